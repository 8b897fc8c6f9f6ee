"""Starts, watches and stops the demo platform's processes; the only place that knows their command lines.

Imports the standard library, chaos_events.errors and chaos_events.demo.{brokers,procs}; never locust or gevent.

The platform is its Kafka (Tansu, the default, or a three-broker Apache Kafka cluster: `kafka="apache"`, see
brokers.py) plus three services: the TCP fault proxy (one route to the API, one per broker, each broker advertising
its route so that every client connection passes through the proxy), the consumer and the API. Every part runs on
127.0.0.1, in its own session, with a pidfile under run_dir and a log under run_dir/logs. `start_platform` returns
only when every part answers (the brokers registered and the topics created, the consumer's heartbeat with assigned
partitions, `/health` 200 for the API) and stops whatever it started when any step fails. Stopping goes by pidfile,
and only after checking that the pid still runs the command line we recorded: a stale pidfile whose pid was reused
by another process is removed, never signalled.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_events.backends.proxy.defaults import DEFAULT_CONTROL_PORT
from chaos_events.errors import ChaosError

from chaos_events.demo.brokers import IMPLEMENTATIONS, KINDS
from chaos_events.demo.procs import (check_ports_free, free_port, launch, pid_alive, pid_runs, port_free, read_pidfile,  # noqa: F401
                                     running_pid, stop_recorded, tail, tcp_open, wait_ready, write_pidfile)

ROOT = Path(__file__).resolve().parent.parent  # the chaos_events package (restart commands run ROOT/demo/__main__.py)
REPO = ROOT.parent                              # where the parts run, and what they import chaos_events from
SERVICES: tuple[str, ...] = ("proxy", "consumer", "api")  # in start order; the brokers start right after the proxy
PARTS: tuple[str, ...] = ("broker", *SERVICES)              # the default (Tansu) platform's parts
SERVICE_PORTS: dict[str, int] = {"api_route": 8000, "api": 8001, "proxy_control": DEFAULT_CONTROL_PORT}
SERVICE_PORT_OWNERS: dict[str, tuple[str, str]] = {
    "api_route": ("proxy", "API route"), "api": ("api", "HTTP API"), "proxy_control": ("proxy", "control API")}
READY_TIMEOUT_S: dict[str, float] = {"proxy": 20.0, "consumer": 40.0, "api": 40.0}


class PlatformError(ChaosError):
    """The demo platform could not start, or a command about it got bad input."""


def default_ports(kafka: str = "tansu") -> dict[str, int | None]:
    """Every port key of a platform on `kafka` and its default (None: a free port)."""
    if kafka not in IMPLEMENTATIONS:
        raise PlatformError(f"unknown Kafka {kafka!r}; expected one of: {', '.join(KINDS)}")
    brokers = IMPLEMENTATIONS[kafka]
    return {"api_route": SERVICE_PORTS["api_route"], "api": SERVICE_PORTS["api"], **brokers.default_ports,
            "proxy_control": SERVICE_PORTS["proxy_control"]}


DEFAULT_PORTS: dict[str, int | None] = default_ports("tansu")


@dataclass
class Platform:
    """The facts of one running demo platform; `platform.json` in run_dir holds the same.

    Invariant: every URL and address is on 127.0.0.1; clients (api_url, kafka_bootstrap) go through the proxy.
    Example:
        p = start_platform(Path(".run/demo"), kafka="apache"); requests.get(p.api_url + "/health"); p.stop()
    """

    run_dir: Path
    ports: dict[str, int]
    python: str = sys.executable
    topic: str = "events"
    dlq_topic: str = "events.dlq"
    consumer_group: str = "events-store"
    kafka: str = "tansu"
    kafka_facts: dict = field(default_factory=dict, repr=False)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False, compare=False)
    # Command lines as recorded in platform.json: pid checks compare against these, not a recomputation.
    _argv: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _brokers: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir).resolve()
        default_ports(self.kafka)  # PlatformError for an unknown kind

    # -- facts -------------------------------------------------------------------------------------
    @property
    def brokers(self) -> Any:
        """The Kafka of this platform (see brokers.py for the interface)."""
        if self._brokers is None:
            self._brokers = IMPLEMENTATIONS[self.kafka].load(self.run_dir, self.ports, [self.topic, self.dlq_topic], REPO,
                                                           self._start_env(), self.kafka_facts, self._argv)
        return self._brokers

    @property
    def parts(self) -> tuple[str, ...]:
        return (*self.brokers.parts, *SERVICES)

    @property
    def port_owners(self) -> dict[str, tuple[str, str]]:
        return {**SERVICE_PORT_OWNERS, **self.brokers.port_owners}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api_route']}"

    @property
    def api_direct_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def kafka_bootstrap(self) -> str:
        return self.brokers.bootstrap

    @property
    def kafka_direct(self) -> str:
        return self.brokers.direct

    @property
    def proxy_control_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy_control']}"

    @property
    def store_path(self) -> Path:
        return self.run_dir / "store.sqlite3"

    @property
    def pidfiles(self) -> dict[str, Path]:
        return {name: self.run_dir / f"{name}.pid" for name in self.parts}

    @property
    def restart_commands(self) -> dict[str, list[str]]:
        # The script path (not `-m chaos_events.demo`) works from any working directory, installed or not.
        script = str(ROOT / "demo" / "__main__.py")
        return {name: [self.python, script, "start-part", name, "--run-dir", str(self.run_dir)] for name in self.parts}

    def env(self) -> dict[str, str]:
        """What scenarios interpolate (${...}); the broker set adds its own keys (Apache Kafka: one set per broker)."""
        return {
            "DEMO_RUN_DIR": str(self.run_dir),
            "DEMO_API_URL": self.api_url,
            "DEMO_API_DIRECT_URL": self.api_direct_url,
            "DEMO_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "DEMO_KAFKA_DIRECT": self.kafka_direct,
            "DEMO_PROXY_CONTROL": self.proxy_control_url,
            "DEMO_TOPIC": self.topic,
            **self.brokers.env(),
        }

    def part_argv(self, name: str) -> list[str]:
        """The foreground command line of one part (what its pid runs)."""
        if name in self._argv:
            return list(self._argv[name])
        p = self.ports
        if name in self.brokers.parts:
            return self.brokers.argv(name)
        if name == "proxy":
            routes = [f"api=127.0.0.1:{p['api_route']}=127.0.0.1:{p['api']}"]
            routes += [f"{route}=127.0.0.1:{p[listen]}=127.0.0.1:{p[upstream]}" for route, listen, upstream in self.brokers.routes]
            return [self.python, "-m", "chaos_events.backends.proxy", "--control", f"127.0.0.1:{p['proxy_control']}",
                    *[arg for route in routes for arg in ("--route", route)]]
        if name == "consumer":
            return [self.python, "-m", "chaos_events.demo.consumer", "--bootstrap", self.kafka_bootstrap, "--store", str(self.store_path),
                    "--topic", self.topic, "--dlq-topic", self.dlq_topic, "--group", self.consumer_group]
        if name == "api":
            return [self.python, "-m", "chaos_events.demo.api", "--host", "127.0.0.1", "--port", str(p["api"]), "--bootstrap", self.kafka_bootstrap,
                    "--store", str(self.store_path), "--topic", self.topic, "--dlq-topic", self.dlq_topic, "--group", self.consumer_group]
        raise PlatformError(f"unknown part {name!r}; expected one of: {', '.join(self.parts)}")

    def to_json(self) -> dict:
        return {
            "run_dir": str(self.run_dir), "kafka": self.kafka, "ports": self.ports, "python": self.python,
            "api_url": self.api_url, "api_direct_url": self.api_direct_url,
            "kafka_bootstrap": self.kafka_bootstrap, "kafka_direct": self.kafka_direct,
            "topic": self.topic, "dlq_topic": self.dlq_topic, "consumer_group": self.consumer_group,
            "proxy_control_url": self.proxy_control_url, "store_path": str(self.store_path),
            "pidfiles": {k: str(v) for k, v in self.pidfiles.items()},
            "restart_commands": self.restart_commands,
            "argv": {name: self.part_argv(name) for name in self.parts},
            "kafka_facts": self.brokers.to_json(),
            "env": self.env(),
        }

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / "platform.json.tmp"
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(self.run_dir / "platform.json")

    @classmethod
    def load(cls, run_dir: Path) -> "Platform":
        path = Path(run_dir) / "platform.json"
        try:
            data = json.loads(path.read_text())
            platform = cls(Path(data["run_dir"]), {k: int(v) for k, v in data["ports"].items()}, data.get("python", sys.executable),
                           data.get("topic", "events"), data.get("dlq_topic", "events.dlq"), data.get("consumer_group", "events-store"),
                           data.get("kafka", "tansu"), dict(data.get("kafka_facts") or {}))
            platform._argv = {k: list(v) for k, v in data.get("argv", {}).items()}
            platform.brokers  # noqa: B018  (reads the broker facts now, so a broken file fails here)
            return platform
        except FileNotFoundError:
            raise PlatformError(f"{path}: no demo platform here (file not found); start one with `python -m chaos_events.demo up --run-dir {run_dir}`") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"{path}: not a valid platform file ({exc!r})") from None

    # -- processes ---------------------------------------------------------------------------------
    def _start_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}

    def _known(self, name: str) -> None:
        if name not in self.parts:
            raise PlatformError(f"unknown part {name!r}; expected one of: {', '.join(self.parts)}")

    def pid(self, name: str) -> int | None:
        """The pid of a running part, or None (no pidfile, dead, or a pid that now runs something else)."""
        self._known(name)
        return running_pid(self.pidfiles[name], self.part_argv(name))

    def status(self) -> dict[str, dict]:
        out = {}
        for name in self.parts:
            pid = self.pid(name)
            out[name] = {"pid": pid, "running": pid is not None, "pidfile": str(self.pidfiles[name])}
        return out

    def start_part(self, name: str) -> int:
        """(Re)start one part detached, write its pidfile, wait until it is ready; returns its pid."""
        self._known(name)
        if name in self.brokers.parts:
            return self.brokers.start_part(name)
        argv = self.part_argv(name)
        self.stop_part(name)
        check_ports_free({k: v for k, v in self.ports.items() if self.port_owners[k][0] == name}, self.port_owners, PlatformError)
        log_path = self.run_dir / "logs" / f"{name}.log"
        started = time.time()
        proc = self._procs[name] = launch(name, argv, log_path, self.pidfiles[name], REPO, self._start_env())
        try:
            wait_ready(name, proc, lambda: self._ready(name, started), READY_TIMEOUT_S[name], log_path, PlatformError)
        except BaseException:
            self.stop_part(name)
            raise
        return proc.pid

    def _ready(self, name: str, started: float) -> tuple[bool, str]:
        p = self.ports
        if name == "proxy":
            listens = [p["proxy_control"], p["api_route"], *(p[listen] for _, listen, _ in self.brokers.routes)]
            closed = [port for port in listens if not tcp_open(port)]
            return (not closed), f"ports {closed} not accepting connections"
        if name == "consumer":
            try:
                conn = sqlite3.connect(str(self.store_path), timeout=1)
                try:
                    row = conn.execute("SELECT ts, assigned FROM heartbeat WHERE name = 'consumer'").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                return False, f"store not readable: {exc}"
            # Ready means it holds partitions: before that, events wait unread (a group join takes seconds).
            return (row is not None and row[0] >= started - 1 and bool(row[1])), "no fresh heartbeat row with assigned partitions"
        if name == "api":
            try:
                with urllib.request.urlopen(f"{self.api_direct_url}/health", timeout=2) as resp:
                    return resp.status == 200, f"/health answered {resp.status}"
            except urllib.error.HTTPError as exc:
                return False, f"/health answered {exc.code}: {exc.read()[:300]!r}"
            except OSError as exc:
                return False, f"/health: {exc}"
        raise PlatformError(f"unknown part {name!r}")

    def stop_part(self, name: str) -> str:
        """Stop one part by its pidfile (SIGTERM, then SIGKILL); remove the pidfile. Returns what happened."""
        self._known(name)
        if name in self.brokers.parts:
            return self.brokers.stop_part(name)
        return stop_recorded(name, self.pidfiles[name], self.part_argv(name), self._procs.pop(name, None))

    def stop(self) -> dict[str, str]:
        """Stop the services, last started first, then the brokers (Apache Kafka's data goes with them). Safe to call twice."""
        outcomes = {name: self.stop_part(name) for name in reversed(SERVICES)}
        return {**outcomes, **self.brokers.stop_all()}


def start_platform(run_dir: Path, ports: dict[str, int] | None = None, kafka: str = "tansu") -> Platform:
    """Start the brokers, proxy, consumer and API on 127.0.0.1 and wait until all are ready.

    `ports` keys: see `default_ports(kafka)`; missing keys (or None) get free ports. Raises PlatformError naming the
    port and part when a port is taken, and the broker set's error (ChaosError) when its Kafka cannot run here
    (no tansu binary; no Java or Kafka jars). On any failure, stops what it started.
    """
    run_dir = Path(run_dir)
    known = default_ports(kafka)
    unknown = sorted(set(ports or {}) - set(known))
    if unknown:
        raise PlatformError(f"unknown port name(s) {', '.join(unknown)}; expected: {', '.join(known)}")
    chosen = {k: v for k, v in (ports or {}).items() if v is not None}
    taken = set(chosen.values())
    for key in known:
        if key not in chosen:
            chosen[key] = free_port(taken)
            taken.add(chosen[key])
    dupes = sorted({v for v in chosen.values() if list(chosen.values()).count(v) > 1})
    if dupes:
        raise PlatformError(f"port(s) {dupes} given to more than one part: {chosen}")
    if (run_dir / "platform.json").exists():
        previous = Platform.load(run_dir)
        running = {n: s["pid"] for n, s in previous.status().items() if s["running"]}
        if running:
            raise PlatformError(f"a demo platform is already running in {run_dir} (pids {running}); stop it with `python -m chaos_events.demo down --run-dir {run_dir}`")
    platform = Platform(run_dir, chosen, kafka=kafka)
    check_ports_free(chosen, _owners(kafka), PlatformError)
    platform._brokers = IMPLEMENTATIONS[kafka].create(platform.run_dir, chosen, [platform.topic, platform.dlq_topic], REPO, platform._start_env())
    platform.kafka_facts = platform._brokers.to_json()
    platform.save()
    try:
        # The proxy first: brokers advertise its routes, so even creating the topics goes through it.
        platform.start_part("proxy")
        platform.brokers.start_all()
        for name in SERVICES[1:]:
            platform.start_part(name)
    except BaseException:
        platform.stop()
        raise
    return platform


def _owners(kafka: str) -> dict[str, tuple[str, str]]:
    return {**SERVICE_PORT_OWNERS, **IMPLEMENTATIONS[kafka].port_owners}
