"""Starts, watches and stops the demo platform's processes; the only place that knows their command lines.

Imports the standard library, chaos_events.errors and chaos_events.demo.broker; never locust or gevent.

Every part runs on 127.0.0.1, in its own session (so a signal to its group reaches exactly it), with a pidfile
under run_dir and a log under run_dir/logs. `start_platform` returns only when every part answers (TCP connect,
the consumer's heartbeat, `/health` 200 for the API) and stops whatever it started when any step fails. Stopping
goes by pidfile, and only after checking that the pid still runs the command line we recorded: a stale pidfile
whose pid was reused by another process is removed, never signalled.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from chaos_events.errors import ChaosError

from chaos_events.demo import broker

ROOT = Path(__file__).resolve().parent.parent
PARTS: tuple[str, ...] = ("broker", "proxy", "consumer", "api")  # start order; stop order is the reverse
DEFAULT_PORTS: dict[str, int] = {"api_route": 8000, "api": 8001, "kafka_route": 19092, "kafka": 9092, "proxy_control": 8474}
# Which part listens on each port, and what for: error messages name both.
PORT_OWNERS: dict[str, tuple[str, str]] = {
    "api_route": ("proxy", "API route"),
    "api": ("api", "HTTP API"),
    "kafka_route": ("proxy", "Kafka route"),
    "kafka": ("broker", "Kafka listener"),
    "proxy_control": ("proxy", "control API"),
}
READY_TIMEOUT_S: dict[str, float] = {"broker": 20.0, "proxy": 20.0, "consumer": 40.0, "api": 40.0}
STOP_GRACE_S = 5.0


class PlatformError(ChaosError):
    """The demo platform could not start, or a command about it got bad input."""


@dataclass
class Platform:
    """The facts of one running demo platform; `platform.json` in run_dir holds the same.

    Invariant: every URL and address is on 127.0.0.1; clients (api_url, kafka_bootstrap) go through the proxy.
    Example:
        p = start_platform(Path(".run/demo")); requests.get(p.api_url + "/health"); p.stop()
    """

    run_dir: Path
    ports: dict[str, int]
    python: str = sys.executable
    topic: str = "events"
    dlq_topic: str = "events.dlq"
    consumer_group: str = "events-store"
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False, compare=False)
    # Command lines as recorded in platform.json: pid checks compare against these, not a recomputation.
    _argv: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir).resolve()

    # -- facts -------------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api_route']}"

    @property
    def api_direct_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka_route']}"

    @property
    def kafka_direct(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    @property
    def proxy_control_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy_control']}"

    @property
    def store_path(self) -> Path:
        return self.run_dir / "store.sqlite3"

    @property
    def pidfiles(self) -> dict[str, Path]:
        return {name: self.run_dir / f"{name}.pid" for name in PARTS}

    @property
    def restart_commands(self) -> dict[str, list[str]]:
        # The script path (not `-m chaos_events.demo`) works from any working directory, installed or not.
        script = str(ROOT / "demo" / "__main__.py")
        return {name: [self.python, script, "start-part", name, "--run-dir", str(self.run_dir)] for name in PARTS}

    def env(self) -> dict[str, str]:
        return {
            "DEMO_RUN_DIR": str(self.run_dir),
            "DEMO_API_URL": self.api_url,
            "DEMO_API_DIRECT_URL": self.api_direct_url,
            "DEMO_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "DEMO_KAFKA_DIRECT": self.kafka_direct,
            "DEMO_PROXY_CONTROL": self.proxy_control_url,
            "DEMO_TOPIC": self.topic,
        }

    def part_argv(self, name: str) -> list[str]:
        """The foreground command line of one part (what its pid runs)."""
        if name in self._argv:
            return list(self._argv[name])
        p = self.ports
        if name == "broker":
            return broker.broker_argv(p["kafka"], p["kafka_route"])
        if name == "proxy":
            return [self.python, "-m", "chaos_events.backends.proxy", "--control", f"127.0.0.1:{p['proxy_control']}",
                    "--route", f"api=127.0.0.1:{p['api_route']}=127.0.0.1:{p['api']}",
                    "--route", f"kafka=127.0.0.1:{p['kafka_route']}=127.0.0.1:{p['kafka']}"]
        if name == "consumer":
            return [self.python, "-m", "chaos_events.demo.consumer", "--bootstrap", self.kafka_bootstrap, "--store", str(self.store_path),
                    "--topic", self.topic, "--dlq-topic", self.dlq_topic, "--group", self.consumer_group]
        if name == "api":
            return [self.python, "-m", "chaos_events.demo.api", "--host", "127.0.0.1", "--port", str(p["api"]), "--bootstrap", self.kafka_bootstrap,
                    "--store", str(self.store_path), "--topic", self.topic, "--dlq-topic", self.dlq_topic, "--group", self.consumer_group]
        raise PlatformError(f"unknown part {name!r}; expected one of: {', '.join(PARTS)}")

    def to_json(self) -> dict:
        return {
            "run_dir": str(self.run_dir), "ports": self.ports, "python": self.python,
            "api_url": self.api_url, "api_direct_url": self.api_direct_url,
            "kafka_bootstrap": self.kafka_bootstrap, "kafka_direct": self.kafka_direct,
            "topic": self.topic, "dlq_topic": self.dlq_topic, "consumer_group": self.consumer_group,
            "proxy_control_url": self.proxy_control_url, "store_path": str(self.store_path),
            "pidfiles": {k: str(v) for k, v in self.pidfiles.items()},
            "restart_commands": self.restart_commands,
            "argv": {name: self.part_argv(name) for name in PARTS},
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
                           data.get("topic", "events"), data.get("dlq_topic", "events.dlq"), data.get("consumer_group", "events-store"))
            platform._argv = {k: list(v) for k, v in data.get("argv", {}).items() if k in PARTS}
            return platform
        except FileNotFoundError:
            raise PlatformError(f"{path}: no demo platform here (file not found); start one with `python -m chaos_events.demo up --run-dir {run_dir}`") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"{path}: not a valid platform file ({exc!r})") from None

    # -- processes ---------------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        """The pid of a running part, or None (no pidfile, dead, or a pid that now runs something else)."""
        pid = read_pidfile(self.pidfiles[name])
        if pid is None or not pid_runs(pid, self.part_argv(name)):
            return None
        return pid

    def status(self) -> dict[str, dict]:
        return {name: {"pid": self.pid(name), "running": self.pid(name) is not None, "pidfile": str(self.pidfiles[name])} for name in PARTS}

    def start_part(self, name: str) -> int:
        """(Re)start one part detached, write its pidfile, wait until it is ready; returns its pid."""
        argv = self.part_argv(name)
        self.stop_part(name)
        check_ports_free({k: v for k, v in self.ports.items() if PORT_OWNERS[k][0] == name})
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
        with open(log_path, "ab") as log:
            log.write(f"--- start {name} at {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._procs[name] = proc
        write_pidfile(self.pidfiles[name], proc.pid)
        started = time.time()
        try:
            self._wait_ready(name, proc, started, log_path)
        except BaseException:
            self.stop_part(name)
            raise
        return proc.pid

    def _wait_ready(self, name: str, proc: subprocess.Popen, started: float, log_path: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S[name]
        last = "not checked yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PlatformError(f"demo {name} exited with code {proc.returncode} while starting; last lines of {log_path}:\n{tail(log_path)}")
            ok, last = self._ready(name, started)
            if ok:
                return
            time.sleep(0.1)
        raise PlatformError(f"demo {name} not ready within {READY_TIMEOUT_S[name]:g} s ({last}); last lines of {log_path}:\n{tail(log_path)}")

    def _ready(self, name: str, started: float) -> tuple[bool, str]:
        p = self.ports
        if name == "broker":
            if not tcp_open(p["kafka"]):
                return False, f"port {p['kafka']} not accepting connections"
            # Tansu keeps topics in memory: every (re)start needs them again.
            broker.ensure_topics(p["kafka"], [self.topic, self.dlq_topic])
            return True, "ok"
        if name == "proxy":
            closed = [port for port in (p["proxy_control"], p["api_route"], p["kafka_route"]) if not tcp_open(port)]
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
            # Ready means it holds partitions: before that, events wait unread (Tansu's join takes ~3 s).
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
        pidfile = self.pidfiles[name]
        pid = read_pidfile(pidfile)
        proc = self._procs.pop(name, None)
        if pid is None:
            outcome = "not running"
        elif not pid_runs(pid, self.part_argv(name)):
            outcome = f"stale pidfile (pid {pid} is not running the demo {name}); removed"
        else:
            # After a restart by a fault, the pidfile names a newer process than the Popen we kept: wait on the pid.
            terminate_group(pid, proc if proc is not None and proc.pid == pid else None)
            outcome = f"stopped pid {pid}"
        if proc is not None and proc.poll() is None:
            terminate_group(proc.pid, proc)
        pidfile.unlink(missing_ok=True)
        return outcome

    def stop(self) -> dict[str, str]:
        """Stop every part, last started first. Safe to call twice."""
        return {name: self.stop_part(name) for name in reversed(PARTS)}


def start_platform(run_dir: Path, ports: dict[str, int] | None = None) -> Platform:
    """Start broker, proxy, consumer and API on 127.0.0.1 and wait until all are ready.

    `ports` keys: api_route, api, kafka_route, kafka, proxy_control; missing keys (or None) get free ports.
    Raises PlatformError naming the port and part when a port is taken. On any failure, stops what it started.
    """
    run_dir = Path(run_dir)
    unknown = sorted(set(ports or {}) - set(DEFAULT_PORTS))
    if unknown:
        raise PlatformError(f"unknown port name(s) {', '.join(unknown)}; expected: {', '.join(DEFAULT_PORTS)}")
    chosen = dict(ports or {})
    taken = set(chosen.values())
    for key in DEFAULT_PORTS:
        if key not in chosen:
            chosen[key] = _free_port(taken)
            taken.add(chosen[key])
    dupes = sorted({v for v in chosen.values() if list(chosen.values()).count(v) > 1})
    if dupes:
        raise PlatformError(f"port(s) {dupes} given to more than one part: {chosen}")
    if (run_dir / "platform.json").exists():
        previous = Platform.load(run_dir)
        running = {n: s["pid"] for n, s in previous.status().items() if s["running"]}
        if running:
            raise PlatformError(f"a demo platform is already running in {run_dir} (pids {running}); stop it with `python -m chaos_events.demo down --run-dir {run_dir}`")
    platform = Platform(run_dir, chosen)
    check_ports_free(chosen)
    platform.save()
    try:
        for name in PARTS:
            platform.start_part(name)
    except BaseException:
        platform.stop()
        raise
    return platform


# -- helpers ----------------------------------------------------------------------------------------
def check_ports_free(ports: dict[str, int]) -> None:
    for key, port in ports.items():
        part, what = PORT_OWNERS[key]
        if not port_free(port):
            raise PlatformError(f"port {port} on 127.0.0.1 is already in use; the demo {part} needs it ({what}, ports.{key})")


def port_free(port: int) -> bool:
    # SO_REUSEADDR like the servers themselves, so a socket in TIME_WAIT does not count as taken.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(exclude: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port


def tcp_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pidfile(path: Path) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_pidfile(path: Path, pid: int) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_runs(pid: int, argv: list[str]) -> bool:
    """True when `pid` is alive and runs exactly `argv` (guards against pid reuse)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return [c.decode(errors="replace") for c in cmdline if c] == argv


def terminate_group(pid: int, proc: subprocess.Popen | None = None, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the part's process group (and SIGCONT, in case it was frozen), then SIGKILL after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    if _wait_dead(pid, proc, grace):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _wait_dead(pid, proc, 5.0)


def _wait_dead(pid: int, proc: subprocess.Popen | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
