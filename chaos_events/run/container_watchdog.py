"""The watchdog of a harness that runs in a container: reverts the journal when the harness's container dies.

    python -m chaos_events.run.container_watchdog --container NAME --journal FILE [--interval 0.5]

The process watchdog (watchdog.py) watches a pid, so it lives in the harness's pid namespace and dies with its
container: a fault (a paused container, say) injected by a master that is `docker kill`ed would stay. This one
runs in a container of its own (docker-compose.locust.yml's `watchdog` service) that shares two things with the
master: the revert journal, on a volume, and the Docker engine, through its socket. It asks the engine for the
master container's state every `interval` seconds; whenever that container is not running (exited, dead, or
removed) while the journal lists faults and is not closed, it reverts them, last in first out, with the same
code as `chaos-events revert --journal FILE`.

Unlike the process watchdog it does not exit when a run ends: a compose stack runs several masters one after
another (each `docker compose up` of the master is a new run with the same journal), so it watches until it is
stopped. A closed journal is left alone (its entries, if any, are failed reverts for a human and for
`chaos-events revert`); a revert that fails is retried every RETRY_S, not every interval.

Imports the standard library, chaos_events.run.journal and chaos_events.backends.docker (which imports docker
lazily); never locust, gevent or prometheus_client.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Callable

from chaos_events.errors import ChaosError
from chaos_events.run.journal import JournalError, read_journal, revert_from_journal

RETRY_S = 10.0
ALIVE = ("running", "paused", "restarting")  # a paused master is frozen, not dead: its faults stay its own


def container_state(name: str) -> str:
    """The container's Docker status (running, paused, exited, ...), or "missing" when there is none."""
    from chaos_events.backends import docker as containers

    container = containers.by_id(name, name)
    return "missing" if container is None else containers.status(container, name)


def pending(journal_path: str) -> dict | None:
    """The journal when it lists faults a dead owner left behind (not closed, entries present), else None."""
    data = read_journal(journal_path)
    if not data or data.get("closed") or not data.get("entries"):
        return None
    return data


class ContainerWatchdog:
    """One watch loop; `step()` is one look (the test and `main` call it), `run()` loops until stopped."""

    def __init__(self, container: str, journal_path: str, interval_s: float = 0.5,
                 log: Callable[[str], None] = print, state: Callable[[str], str] = container_state):
        self.container = container
        self.journal_path = journal_path
        self.interval_s = interval_s
        self.log = log
        self.state = state
        self.stopping = False
        self._last_state: str | None = None
        self._failed_at: float | None = None

    def step(self) -> int:
        """Look once; revert when the owner is gone and the journal says faults are active. Returns the number
        of faults that are still active after this look (0 when nothing was to be done)."""
        try:
            state = self.state(self.container)
        except ChaosError as exc:  # the engine did not answer: nothing can be reverted through it either
            self.log(f"container watchdog: cannot inspect {self.container!r}: {exc}")
            return 0
        if state != self._last_state:
            self.log(f"container watchdog: {self.container} is {state}")
            self._last_state = state
        if state in ALIVE:
            return 0
        try:
            data = pending(self.journal_path)
        except JournalError as exc:
            self.log(f"container watchdog: {exc}")
            return 0
        if data is None:
            return 0
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_S:
            return len(data["entries"])
        self.log(f"container watchdog: {self.container} is {state} with {len(data['entries'])} fault(s) of run "
                 f"{data.get('run_id') or '?'} still active; reverting from {self.journal_path}")
        try:
            results = revert_from_journal(self.journal_path, log=self.log)
        except JournalError as exc:
            self.log(f"container watchdog: REVERT FAILED: {exc}")
            self._failed_at = time.monotonic()
            return len(data["entries"])
        failed = [r for r in results if not r.ok]
        self._failed_at = time.monotonic() if failed else None
        self.log(f"container watchdog: reverted {sum(r.ok and not r.part for r in results)} fault(s), {len(failed)} failed"
                 + (f"; retrying in {RETRY_S:g} s, or `chaos-events revert --journal {self.journal_path}`" if failed else ""))
        return len(failed)

    def run(self) -> int:
        self.log(f"container watchdog: watching container {self.container}, journal {self.journal_path}")
        while not self.stopping:
            self.step()
            time.sleep(self.interval_s)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_events.run.container_watchdog",
                                     description="Revert the journal's faults whenever the harness's container is not running.")
    parser.add_argument("--container", required=True, help="name (or id) of the container the harness runs in")
    parser.add_argument("--journal", required=True, help="path of the revert journal (on a volume the harness shares)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks (default 0.5)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error(f"--interval must be positive; got {args.interval}")

    def log(line: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}", flush=True)

    watchdog = ContainerWatchdog(args.container, args.journal, args.interval, log)

    def stop(_signum, _frame):
        watchdog.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return watchdog.run()


if __name__ == "__main__":
    sys.exit(main())
