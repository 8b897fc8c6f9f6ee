"""Process plumbing of the demo platform: free ports, pidfiles, detached starts, readiness waits and stops by pid.

Standard library only; never locust or gevent. Shared by the supervisor (proxy, consumer, API), the Tansu broker
(broker.py) and the Apache Kafka cluster (kafka_cluster.py), so every part is started and stopped the same way:
in its own session (a signal to its group reaches exactly it), with its output appended to a log, and stopped
only after checking that its pid still runs the command line we recorded (a reused pid is never signalled).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from chaos_events.errors import ChaosError

STOP_GRACE_S = 5.0


# -- ports --------------------------------------------------------------------------------------------
def port_free(port: int) -> bool:
    # SO_REUSEADDR like the servers themselves, so a socket in TIME_WAIT does not count as taken.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(exclude: set[int] = frozenset()) -> int:
    """A port on 127.0.0.1 nothing listens on now, not in `exclude`."""
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


# -- pidfiles and pids ----------------------------------------------------------------------------------
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


def running_pid(pidfile: Path, argv: list[str]) -> int | None:
    """The pid in `pidfile` when it runs `argv`; None when there is none, it died, or the pid now runs something else."""
    pid = read_pidfile(pidfile)
    return pid if pid is not None and pid_runs(pid, argv) else None


# -- start, wait, stop -------------------------------------------------------------------------------------
def launch(name: str, argv: list[str], log_path: Path, pidfile: Path, cwd: Path, env: dict[str, str] | None = None,
           gid: int | None = None) -> subprocess.Popen:
    """Start `argv` detached in its own session, output appended to `log_path`, pid written to `pidfile`; with `gid`,
    as that group only (no supplementary groups; the uid stays)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- start {name} at {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, **({"group": gid, "extra_groups": []} if gid is not None else {}))
    write_pidfile(pidfile, proc.pid)
    return proc


def wait_ready(name: str, proc: subprocess.Popen, check: Callable[[], tuple[bool, str]], timeout_s: float, log_path: Path,
               error: type[ChaosError]) -> None:
    """Poll `check()` until it says ready; `error` naming the part, what was last seen and the log's tail otherwise."""
    deadline = time.monotonic() + timeout_s
    last = "not checked yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise error(f"demo {name} exited with code {proc.returncode} while starting; last lines of {log_path}:\n{tail(log_path)}")
        ok, last = check()
        if ok:
            return
        time.sleep(0.1)
    raise error(f"demo {name} not ready within {timeout_s:g} s ({last}); last lines of {log_path}:\n{tail(log_path)}")


def stop_recorded(name: str, pidfile: Path, argv: list[str], proc: subprocess.Popen | None = None, grace: float = STOP_GRACE_S) -> str:
    """Stop the part whose pid is in `pidfile` (when it runs `argv`), remove the pidfile; returns what happened."""
    pid = read_pidfile(pidfile)
    if pid is None:
        outcome = "not running"
    elif not pid_runs(pid, argv):
        outcome = f"stale pidfile (pid {pid} is not running the demo {name}); removed"
    else:
        # After a restart by a fault, the pidfile names a newer process than the Popen we kept: wait on the pid.
        terminate_group(pid, proc if proc is not None and proc.pid == pid else None, grace)
        outcome = f"stopped pid {pid}"
    if proc is not None and proc.poll() is None:
        terminate_group(proc.pid, proc, grace)
    Path(pidfile).unlink(missing_ok=True)
    return outcome


def terminate_group(pid: int, proc: subprocess.Popen | None = None, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the part's process group (and SIGCONT, in case it was frozen), then SIGKILL after `grace`."""
    signal_group(pid, signal.SIGTERM)
    if wait_dead(pid, proc, grace):
        return
    signal_group(pid, signal.SIGKILL)
    wait_dead(pid, proc, 5.0)


def signal_group(pid: int, sig: int) -> None:
    """`sig` to the group led by `pid`; SIGTERM also gets a SIGCONT, which a frozen process needs to act on it."""
    for each in (sig, signal.SIGCONT) if sig == signal.SIGTERM else (sig,):
        try:
            os.killpg(pid, each)
        except (ProcessLookupError, PermissionError):
            pass


def wait_dead(pid: int, proc: subprocess.Popen | None, timeout: float) -> bool:
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


def check_ports_free(ports: dict[str, int], owners: dict[str, tuple[str, str]], error: type[ChaosError]) -> None:
    """`error` naming the first taken port, the part that needs it and what for (owners: key -> (part, what))."""
    for key, port in ports.items():
        if not port_free(port):
            part, what = owners[key]
            raise error(f"port {port} on 127.0.0.1 is already in use; the demo {part} needs it ({what}, ports.{key})")
