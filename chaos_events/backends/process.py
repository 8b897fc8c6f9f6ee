"""How service faults reach a local process: find its pid, signal it, stop it, start it again, read its state.

Linux only (/proc). Must not import locust, gevent, docker or prometheus_client; waits use `time.sleep`, which
Locust's gevent monkey-patching turns into a cooperative sleep.
OS errors are translated here into InjectionError / RevertError with text that names the target and the pid.

A process target (chaos_events.scenario.targets.ProcessTarget) names the process by `pidfile`, `pid`, or `command`
(the argv, matched exactly against /proc/*/cmdline), with an optional `restart` argv used to start it again and an
optional `cwd`. The ProcessService built on these functions is in process_service.py.

Example:
    pid = resolve_pid(ProcessTarget(pidfile=".run/broker.pid"), "broker")
    pause(pid, "broker"); is_stopped(pid) is True; resume(pid, "broker")
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from chaos_events.backends.children import proc_stat
from chaos_events.errors import ChaosError, InjectionError

# Children we started: polled (and so reaped) by is_alive, so a started process that exits leaves no zombie
# behind in the harness.
_children: dict[int, subprocess.Popen] = {}


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout_s` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


# -- reading /proc ---------------------------------------------------------------------------------
def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat (R, S, D, T, t, Z, ...); None when there is no such process."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; the state follows the last ')'.
    return stat[stat.rindex(")") + 2]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): tells a reused pid apart."""
    stat = proc_stat(pid)
    return None if stat is None else stat[2]


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def is_stopped(pid: int) -> bool:
    """True when the process is stopped by a signal (SIGSTOP) or by a tracer."""
    return proc_state(pid) in ("T", "t")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


# -- finding the process ---------------------------------------------------------------------------
def read_pidfile(path: str | os.PathLike, name: str = "") -> int:
    """The pid in `path`; InjectionError naming the file when it is missing or does not hold a pid."""
    label = f"process target {name!r}: " if name else ""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        raise InjectionError(f"{label}pidfile {path} does not exist") from None
    except OSError as exc:
        raise InjectionError(f"{label}cannot read pidfile {path}: {exc.strerror or exc}") from exc
    pid = parse_pid(text)
    if pid is None:
        raise InjectionError(f"{label}pidfile {path} does not hold a pid; got {text[:40]!r}")
    return pid


def parse_pid(text: str) -> int | None:
    """A pidfile's content as a pid: ASCII digits only ('²' is a digit to str.isdigit), 1 or more; else None."""
    text = text.strip()
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        return None
    pid = int(text)
    return pid if pid >= 1 else None


def find_by_command(argv: list[str], name: str = "") -> int:
    """The one live process whose argv is exactly `argv`; InjectionError when none or several match."""
    matches = sorted(int(d) for d in os.listdir("/proc") if d.isdigit() and is_alive(int(d)) and cmdline(int(d)) == list(argv))
    label = f"process target {name!r}: " if name else ""
    if not matches:
        raise InjectionError(f"{label}no running process has the command {' '.join(argv)!r}")
    if len(matches) > 1:
        raise InjectionError(f"{label}{len(matches)} processes have the command {' '.join(argv)!r} (pids {', '.join(map(str, matches))}); name it by pidfile")
    return matches[0]


def resolve_pid(spec: Any, name: str = "") -> int:
    """The pid a ProcessTarget names: its `pidfile`, else its `pid`, else the process running `command`.

    The pid is returned even when that process has exited; callers check `is_alive`.
    """
    if spec.pidfile:
        return read_pidfile(spec.pidfile, name)
    if spec.pid:
        return int(spec.pid)
    if spec.command:
        return find_by_command(list(spec.command), name)
    raise InjectionError(f"process target {name!r}: names no pidfile, pid or command")


def running_pid(spec: Any, name: str = "", known: tuple[int | None, ...] = ()) -> int | None:
    """A live pid for the target: one of `known` (pids a fault started or saw), else what the spec resolves to."""
    for pid in known:
        if pid and is_alive(pid):
            return pid
    try:
        pid = resolve_pid(spec, name)
    except InjectionError:
        return None
    return pid if is_alive(pid) else None


# -- acting on it ------------------------------------------------------------------------------------
def send_signal(pid: int, sig: int, name: str = "", error: type[ChaosError] = InjectionError) -> None:
    """os.kill with the OS error translated into `error` naming the target. Never pid 1 or the harness itself."""
    if pid <= 1 or pid == os.getpid():
        raise error(f"process target {name!r}: refusing to signal pid {pid} ({'init' if pid <= 1 else 'the harness itself'})")
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        raise error(f"process target {name!r}: pid {pid} does not exist (it has exited)") from None
    except PermissionError:
        raise error(f"process target {name!r}: not permitted to send {signal.Signals(sig).name} to pid {pid} (another user's process?)") from None


def pause(pid: int, name: str = "") -> None:
    send_signal(pid, signal.SIGSTOP, name)


def resume(pid: int, name: str = "", error: type[ChaosError] = InjectionError) -> None:
    send_signal(pid, signal.SIGCONT, name, error)


def stop(pid: int, name: str = "", timeout_s: float = 10.0, error: type[ChaosError] = InjectionError) -> None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL; returns once the process is gone."""
    if not is_alive(pid):
        return
    send_signal(pid, signal.SIGTERM, name, error)
    # A stopped (paused) process only acts on SIGTERM once it runs again.
    try:
        os.kill(pid, signal.SIGCONT)
    except OSError:
        pass
    if wait_until(lambda: not is_alive(pid), timeout_s):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError:
        raise error(f"process target {name!r}: not permitted to send SIGKILL to pid {pid}") from None
    if not wait_until(lambda: not is_alive(pid), 5.0):
        raise error(f"process target {name!r}: pid {pid} is still alive after SIGTERM, {timeout_s:g}s and SIGKILL")


def start(argv: list[str], name: str = "", *, cwd: str | None = None, pidfile: str | os.PathLike | None = None,
          log_path: str | os.PathLike | None = None, error: type[ChaosError] = InjectionError) -> int:
    """Run `argv` detached in its own session (Ctrl-C to the harness does not reach it); returns its pid.

    Output goes to `log_path` (appended) or nowhere. When `pidfile` is given it is written with the new pid,
    unless the command itself rewrote the file meanwhile (a launcher that daemonizes writes its child's pid).
    """
    pidfile_path = Path(pidfile) if pidfile else None
    before = _file_identity(pidfile_path)
    out: Any = subprocess.DEVNULL
    try:
        if log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            out = open(log_path, "ab")
        proc = subprocess.Popen(list(argv), cwd=cwd or None, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    except FileNotFoundError:
        raise error(f"process target {name!r}: cannot start {' '.join(argv)!r}: {argv[0]!r} not found") from None
    except OSError as exc:
        raise error(f"process target {name!r}: cannot start {' '.join(argv)!r}: {exc.strerror or exc}") from exc
    finally:
        if out is not subprocess.DEVNULL:
            out.close()
    _children[proc.pid] = proc
    # A command that writes the pidfile itself (a launcher that daemonizes) owns it: once the file changed in any way
    # (a shell's `> file` first empties it), ours would overwrite the real pid with the launcher's.
    if pidfile_path is not None and _file_identity(pidfile_path) == before:
        try:
            write_pidfile(pidfile_path, proc.pid)
        except OSError as exc:
            raise error(f"process target {name!r}: started pid {proc.pid} but cannot write pidfile {pidfile_path}: {exc.strerror or exc}") from exc
    return proc.pid


def stop_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Signal the process group we started (its leader is `proc`), SIGKILL it after `grace`; waits for the leader."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def write_pidfile(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of a file, or None when it does not exist: tells whether someone rewrote it."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def pidfile_pid(path: Path | None) -> int | None:
    """The pid in a pidfile, or None when there is no file or no pid in it (no error: for comparisons)."""
    if path is None:
        return None
    try:
        return parse_pid(path.read_text())
    except OSError:
        return None
