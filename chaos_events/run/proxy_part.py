"""The harness's own fault proxy as a part of a run: started before the load for the routes the scenario declares
(proxy targets with `listen` and `upstream`), journalled by pid, stopped at the end, and stopped by
`chaos-events revert` (or the watchdog) after a SIGKILL of the run.

Why a child process (`python -m chaos_events.backends.proxy -config FILE`) and not greenlets in Locust's process: the
proxy's relay and toxics then take no CPU from the load generator's hub (the load's latencies stay the system's),
and a pid in the journal is all another process needs to stop it. It runs in its own session, so a Ctrl-C to Locust
does not end it before the toxics on it are removed: the session stops it after the reverts.

One proxy is started per distinct `control` of the declared routes (none given: a free port, read from the proxy's
own `control:` line). Standard library only, plus the proxy's client (requests) to wait until it answers; must not
import locust, gevent, docker or prometheus_client.

Example:
    proxies = start_declared(plan, ".run", journal, print)   # -> [StartedProxy(url="http://127.0.0.1:40211", ...)]
    run_plan = with_controls(plan, proxies)                  # faults reach the started proxies
    stop_started(proxies, journal, print)
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from chaos_events.backends.children import proc_stat
from chaos_events.errors import ChaosError
from chaos_events.scenario.fields import split_address
from chaos_events.scenario.model import Plan, Target, TargetKind
from chaos_events.scenario.proxy_routes import declared_routes

READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
PROXY_MODULE = "chaos_events.backends.proxy"
PART_KIND = "proxy"


class ProxyPartError(ChaosError):
    """The harness's proxy for the declared routes could not be started."""


@dataclass
class StartedProxy:
    """One running proxy this run started. `process` is None when rebuilt from a journal (another process's child)."""

    key: str                        # the journal's key: "proxy:<control as declared, or 'free'>"
    url: str                        # its control URL
    pid: int
    start_time: int | None          # from /proc: a reused pid is never signalled
    routes: tuple[str, ...]
    process: subprocess.Popen | None = None

    def journal_info(self) -> dict[str, Any]:
        return {"kind": PART_KIND, "pid": self.pid, "start_time": self.start_time, "control": self.url,
                "routes": list(self.routes), "description": self.describe()}

    def describe(self) -> str:
        return f"the harness's proxy at {self.url or '(not ready yet)'} for route(s) {', '.join(self.routes)} (pid {self.pid})"


def groups(plan: Plan) -> dict[str | None, list[Target]]:
    """The declared routes by the control they were given (None: a free port), one target per route name."""
    out: dict[str | None, list[Target]] = {}
    seen: set[str] = set()
    for target in declared_routes(plan.targets):
        if target.spec.route not in seen:
            seen.add(target.spec.route)
            out.setdefault(target.spec.control, []).append(target)
    return out


def _process_identity(pid: int) -> tuple[str, int] | None:
    """(state, start time) from /proc/PID/stat, or None when there is no such process."""
    stat = proc_stat(pid)
    return None if stat is None else (stat[0], stat[2])


def _process_start_time(pid: int) -> int | None:
    identity = _process_identity(pid)
    return identity[1] if identity else None


def start_declared(plan: Plan, run_dir: str, journal: Any, log: Callable[[str], None]) -> list[StartedProxy]:
    """Start one proxy per control, journal each, wait until each answers. On a failure, stops what it started."""
    started: list[StartedProxy] = []
    try:
        for index, (control, targets) in enumerate(groups(plan).items()):
            proxy = _start_one(control, targets, Path(run_dir), index, journal)
            started.append(proxy)
            log(f"chaos-events: started {proxy.describe()}")
    except BaseException:
        stop_started(started, journal, log)
        raise
    return started


def _start_one(control: str | None, targets: list[Target], run_dir: Path, index: int, journal: Any) -> StartedProxy:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / f"chaos-proxy-{index}.json"
    config.write_text(json.dumps([{"name": t.spec.route, "listen": t.spec.listen, "upstream": t.spec.upstream}
                                  for t in targets], indent=1), encoding="utf-8")
    bind = "127.0.0.1:0" if control is None else control.split("://", 1)[1].rstrip("/")
    log_path = run_dir / f"chaos-proxy-{index}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", PROXY_MODULE, "--control", bind, "-config", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proxy = StartedProxy(f"proxy:{control or 'free'}", "", process.pid, _process_start_time(process.pid),
                         tuple(t.spec.route for t in targets), process)
    journal.add_part(proxy.key, proxy.journal_info())  # before waiting: a SIGKILL from here on still stops it
    try:
        proxy.url = _wait_ready(process, log_path)
    except BaseException:
        stop_started([proxy], journal, lambda line: None)
        raise
    journal.add_part(proxy.key, proxy.journal_info())
    return proxy


def _wait_ready(process: subprocess.Popen, log_path: Path) -> str:
    """The proxy's control URL once it printed `proxy ready` and its control API answers."""
    from chaos_events.backends.proxy.client import ProxyClient
    from chaos_events.errors import InjectionError

    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if "proxy ready" in text:
            url = next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("control: "))
            try:
                ProxyClient(url, timeout_s=2.0).wait_ready(max(0.5, deadline - time.monotonic()))
            except InjectionError as exc:
                raise ProxyPartError(f"the harness's proxy does not answer: {exc}") from exc
            return url
        if process.poll() is not None:
            raise ProxyPartError(f"the harness's proxy exited with code {process.returncode} before it was ready: "
                                 f"{text.strip()[-500:] or '(no output)'}")
        if time.monotonic() > deadline:
            raise ProxyPartError(f"the harness's proxy was not ready within {READY_TIMEOUT_S:g}s (log: {log_path})")
        time.sleep(0.05)


def with_controls(plan: Plan, proxies: list[StartedProxy]) -> Plan:
    """The plan with every harness proxy target of a started route pointed at the started proxy's control URL."""
    url_of = {route: p.url for p in proxies for route in p.routes}
    targets = {}
    for name, target in plan.targets.items():
        spec = target.spec
        if (target.kind is TargetKind.PROXY and spec.server == "harness" and spec.route in url_of
                and (spec.declared or not spec.control)):
            target = dataclasses.replace(target, spec=spec.model_copy(update={"control": url_of[spec.route]}))
        targets[name] = target
    return dataclasses.replace(plan, targets=targets)


def stop_started(proxies: list[StartedProxy], journal: Any, log: Callable[[str], None]) -> None:
    """Stop this run's proxies (last started first) and drop them from the journal. Idempotent."""
    for proxy in reversed(proxies):
        if proxy.process is not None and proxy.process.poll() is None:
            proxy.process.terminate()
            try:
                proxy.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proxy.process.kill()
                proxy.process.wait(timeout=STOP_GRACE_S)
            log(f"chaos-events: stopped {proxy.describe()}")
        if journal is not None:
            journal.remove_part(proxy.key)
    proxies.clear()


def stop_journalled(info: dict[str, Any], log: Callable[[str], None]) -> str:
    """Stop a proxy another (dead) run started, from its journal entry; '' when stopped or gone, else why not."""
    pid, start_time = info.get("pid"), info.get("start_time")
    if not isinstance(pid, int) or pid <= 1:
        return f"the journal names no valid pid ({pid!r})"
    if not _same_process(pid, start_time):
        return ""  # exited already (or its pid now belongs to another process): nothing of ours runs
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while _same_process(pid, start_time):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_GRACE_S
        time.sleep(0.05)
    log(f"stopped {info.get('description') or f'pid {pid}'}")
    return ""


def _same_process(pid: int, start_time: int | None) -> bool:
    """The pid runs, is not a zombie, and is the process the journal recorded (same start time, the proxy's argv)."""
    identity = _process_identity(pid)
    if identity is None or identity[0] in ("Z", "X") or (start_time is not None and identity[1] != start_time):
        return False
    try:
        return PROXY_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def listen_problems(target: Target) -> list[tuple[str, str]]:
    """(key, message) for a declared route whose listen address, or given control address, is taken now."""
    spec = target.spec
    wanted = [("listen", spec.listen)]
    if spec.control:
        wanted.append(("control", spec.control.split("://", 1)[1].rstrip("/")))
    problems = []
    for key, address in wanted:
        host, port = split_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                problems.append((key, f"{key!r}: {address} is taken ({exc.strerror or exc}); the harness starts its own "
                                      f"proxy there. If a proxy already runs there, drop 'listen' and 'upstream' and "
                                      f"name its 'control'"))
    return problems
