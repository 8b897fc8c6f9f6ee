"""The watchdog: a separate process that reverts the journal's faults when the harness dies without doing so.

    python -m chaos_events.run.watchdog --pid PID --journal FILE [--interval 0.5]

It polls the owner's pid every `interval` seconds. It exits:
- when the journal is marked `closed` (the owner ended its run and attempted every revert itself; entries left
  in a closed journal are failed reverts, retried by `chaos-events revert --journal FILE`, not by the watchdog);
- when the owner is gone (exited, killed, a zombie, or its pid reused by another process): if the journal still
  lists faults it reverts them first (last in first out), then stops the parts it lists (the harness's own proxy),
  and exits 1 when any revert failed, else 0.
A missing journal file counts as "no faults" and the watchdog keeps watching.

It runs in its own session (`spawn_watchdog` uses start_new_session), so Ctrl-C to Locust does not reach it, and
its output goes to FILE.watchdog.log. Must not import locust, gevent, docker or prometheus_client at module level.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from chaos_events.backends.children import proc_stat
from chaos_events.run.journal import JournalError, read_journal, revert_from_journal


def _process_identity(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a pid from /proc, or None when there is no such process."""
    stat = proc_stat(pid)
    return None if stat is None else (stat[0], stat[2])


def owner_gone(pid: int, start_time: int | None) -> bool:
    """The owner has exited, is a zombie, or its pid now belongs to another process."""
    identity = _process_identity(pid)
    if identity is None:
        return True
    state, started = identity
    return state in ("Z", "X") or (start_time is not None and started != start_time)


def watch(pid: int, journal_path: str, interval_s: float = 0.5, log=print) -> int:
    """Poll until the owner is gone or the journal is closed; returns the exit code (see the module docstring)."""
    identity = _process_identity(pid)
    start_time = identity[1] if identity else None
    log(f"watchdog {os.getpid()}: watching pid {pid}, journal {journal_path}")
    while True:
        try:
            data = read_journal(journal_path)
        except JournalError as exc:
            log(f"watchdog: {exc}")
            data = None
        if data is not None and data.get("closed"):
            log("watchdog: the run ended cleanly (journal closed); exiting")
            return 0
        if owner_gone(pid, start_time):
            break
        time.sleep(interval_s)
    try:  # read again: the owner may have written between the last read and its death
        data = read_journal(journal_path)
    except JournalError as exc:
        log(f"watchdog: REVERT FAILED: {exc}")
        return 1
    if not data or not (data.get("entries") or data.get("parts")):
        log(f"watchdog: pid {pid} is gone and the journal lists no active fault; exiting")
        return 0
    parts = len(data.get("parts") or {})
    log(f"watchdog: pid {pid} is gone with {len(data['entries'])} fault(s) still active"
        + (f" and {parts} part(s) it started (the harness's proxy) running" if parts else "") + "; reverting")
    try:
        results = revert_from_journal(journal_path, log=log)
    except JournalError as exc:
        log(f"watchdog: REVERT FAILED: {exc}")
        return 1
    failed = [r for r in results if not r.ok]
    log(f"watchdog: reverted {sum(r.ok and not r.part for r in results)} fault(s), {len(failed)} failed"
        + (f"; retry with `chaos-events revert --journal {journal_path}`" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_events.run.watchdog",
                                     description="Revert the journal's faults when the harness process dies.")
    parser.add_argument("--pid", type=int, required=True, help="pid of the harness process that owns the journal")
    parser.add_argument("--journal", required=True, help="path of the revert journal")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between checks (default 0.5)")
    args = parser.parse_args(argv)
    if args.pid <= 0 or args.interval <= 0:
        parser.error(f"--pid and --interval must be positive; got --pid {args.pid} --interval {args.interval}")

    def log(line: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}", flush=True)

    return watch(args.pid, args.journal, args.interval, log)


def spawn_watchdog(pid: int, journal_path: str | os.PathLike, interval_s: float = 0.5,
                   log_path: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start the watchdog for `pid` in its own session; output appends to `log_path` (default FILE.watchdog.log)."""
    log_file = Path(log_path) if log_path else Path(f"{journal_path}.watchdog.log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "chaos_events.run.watchdog", "--pid", str(pid), "--journal", str(journal_path),
             "--interval", str(interval_s)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


if __name__ == "__main__":
    sys.exit(main())
