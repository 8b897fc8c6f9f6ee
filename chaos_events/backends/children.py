"""The children that resource faults start: spawned in their own session, named by pid and start time, stopped by group.

Every child runs in its own session (process group == pid), so a stop can end it and anything it started by its
group. A child is named by `ChildHandle(pid, start_ticks)`: the start time from /proc/PID/stat guards against
killing an unrelated process that reused the pid after ours ended (a journal revert may come much later). Each child
also exits by itself when its parent dies, so a SIGKILLed harness leaves no child behind.

Standard library only (as resource.py, which uses it): must not import locust, gevent, docker or prometheus_client.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chaos_events.errors import InjectionError, RevertError

READY_TIMEOUT_S = 30.0

# Popen objects of the children this process started, so they get reaped (no zombies) when stopped.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class ChildHandle:
    """A child process we started. `start_ticks` is field 22 of /proc/PID/stat at start (clock ticks since boot)."""

    pid: int
    start_ticks: int

    def to_state(self) -> dict:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @staticmethod
    def from_state(data: dict) -> "ChildHandle":
        return ChildHandle(int(data["pid"]), int(data["start_ticks"]))


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, utime ticks, start ticks) from /proc/PID/stat, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses; everything after the last ')' is fixed.
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[11]), int(fields[19])


def is_alive(handle: ChildHandle) -> bool:
    """True while the very process we started still runs (not a zombie, not a reused pid)."""
    stat = proc_stat(handle.pid)
    return stat is not None and stat[2] == handle.start_ticks and stat[0] not in ("Z", "X")


def spawn(code: str, args: list[str], label: str) -> tuple[subprocess.Popen, ChildHandle]:
    """Start `python -c code args...` in its own session, watching its parent; `label` names it in errors."""
    watchdog = f"import os,sys,threading,time\nPARENT={os.getpid()}\n" + _PARENT_WATCH
    try:
        proc = subprocess.Popen([sys.executable, "-c", watchdog + code, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                close_fds=True)
    except OSError as exc:
        raise InjectionError(f"could not start the {label} child: {exc}") from exc
    stat = proc_stat(proc.pid)
    handle = ChildHandle(proc.pid, stat[2] if stat else 0)
    _CHILDREN[proc.pid] = proc
    return proc, handle


# The child ends itself when the harness dies (its parent pid changes), so a SIGKILL leaves nothing running.
_PARENT_WATCH = """
def _watch_parent():
    while os.getppid() == PARENT:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=_watch_parent, daemon=True).start()
"""


def wait_ready(proc: subprocess.Popen, handle: ChildHandle, label: str, timeout_s: float = READY_TIMEOUT_S) -> str:
    """Wait for the child's `ready ...` line on stdout; on failure stop it and raise InjectionError with its stderr."""
    deadline = time.monotonic() + timeout_s
    fd = proc.stdout.fileno()
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stop_child(handle)
            raise InjectionError(f"the {label} child (pid {handle.pid}) was not ready within {timeout_s:g}s")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait(timeout=5)
                err = proc.stderr.read().decode(errors="replace").strip().splitlines()
                stop_child(handle)
                detail = err[-1] if err else f"exit status {proc.returncode}"
                raise InjectionError(f"the {label} child (pid {handle.pid}) failed: {detail}")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith("ready"):
        stop_child(handle)
        raise InjectionError(f"the {label} child (pid {handle.pid}) said {line!r} instead of ready")
    return line


def stop_child(handle: ChildHandle, grace_s: float = 3.0) -> None:
    """End a child (and its process group) we started. Idempotent; a reused pid is left alone.

    Raises RevertError when the process is still alive after SIGKILL.
    """
    proc = _CHILDREN.get(handle.pid)
    if is_alive(handle):
        _signal_group(handle, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _still_running(handle, proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _still_running(handle, proc):
            _signal_group(handle, signal.SIGKILL)
            deadline = time.monotonic() + grace_s
            while _still_running(handle, proc) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _still_running(handle, proc):
                raise RevertError(f"process {handle.pid} is still alive after SIGKILL")
    if proc is not None:
        _reap(proc)
        _CHILDREN.pop(handle.pid, None)


def _still_running(handle: ChildHandle, proc: subprocess.Popen | None) -> bool:
    if proc is not None and proc.poll() is not None:
        return False
    return is_alive(handle)


def _signal_group(handle: ChildHandle, sig: int) -> None:
    # Each child leads its own session (start_new_session), so its pgid is its pid.
    try:
        os.killpg(handle.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            os.kill(handle.pid, sig)
        except ProcessLookupError:
            pass


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
