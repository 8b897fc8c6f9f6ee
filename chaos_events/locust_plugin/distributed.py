"""The master's bookkeeping of its workers during a chaos run: which data faults are active (so a worker that joins
mid-fault takes part, and each worker's share of the rate follows the worker count), and which workers were lost
(killed, or gone silent), so the verdict knows its data is incomplete.

Locust's MasterRunner keeps its workers in `runner.clients`; a worker that stops sending heartbeats turns
STATE_MISSING (Locust fires no event for that), so a greenlet looks once a second while the run is on.

May import locust and gevent (it is part of the Locust adapters).

Example:
    books = WorkerBooks(runner, session); books.start_data_fault(message); ...; books.on_worker_connect(client_id)
"""
from __future__ import annotations

from typing import Any

import gevent
from locust.runners import STATE_MISSING, MasterRunner

from chaos_events.faults.data import BROADCAST_START as BAD_TRAFFIC_START
from chaos_events.faults.data import BROADCAST_STOP as BAD_TRAFFIC_STOP
from chaos_events.faults.data import BROADCAST_STOP_ALL as BAD_TRAFFIC_STOP_ALL

WATCH_EVERY_S = 1.0
REBALANCE_AFTER_S = 1.0     # a worker that just connected needs a moment before it takes messages


class WorkerBooks:
    """Invariant: `active` holds the start message of every data fault started and not yet stopped."""

    def __init__(self, runner: MasterRunner, session_getter):
        self.runner = runner
        self.session = session_getter
        self.active: dict[str, dict] = {}
        self.seen: set[str] = set()

    # -- data faults ------------------------------------------------------------------------------
    def send(self, kind: str, data: dict) -> None:
        """A broadcast from the session: bad-traffic rates are for the whole load, split across the workers."""
        if kind == BAD_TRAFFIC_START:
            self.active[data["fault_id"]] = dict(data)
            self._send_share(data)
            return
        if kind == BAD_TRAFFIC_STOP:
            self.active.pop(data.get("fault_id"), None)
        elif kind == BAD_TRAFFIC_STOP_ALL:
            self.active.clear()
        self.runner.send_message(kind, data)

    def _send_share(self, data: dict) -> None:
        share = dict(data, rate_per_s=float(data.get("rate_per_s", 0)) / max(1, self.runner.worker_count))
        self.runner.send_message(BAD_TRAFFIC_START, share)

    def on_worker_connect(self, client_id: str, **_kwargs: Any) -> None:
        """A worker joined: once it is ready, every active data fault restarts with the new share of its rate."""
        if self.active:
            gevent.spawn_later(REBALANCE_AFTER_S, self._rebalance)

    def _rebalance(self) -> None:
        for data in list(self.active.values()):
            self._send_share(data)

    # -- lost workers -----------------------------------------------------------------------------
    def on_worker_report(self, client_id: str) -> None:
        self.seen.add(client_id)

    def watch(self) -> None:
        """While the run is on: a worker seen before that is now missing or gone is lost, with its data."""
        while True:
            gevent.sleep(WATCH_EVERY_S)
            session = self.session()
            if session is None or not session.running:
                continue
            for client_id in sorted(self.seen):
                client = self.runner.clients.get(client_id)
                if client is None or client.state == STATE_MISSING:
                    self.seen.discard(client_id)
                    lost = {"worker": client_id, "t": round(session.clock(), 3)}
                    session.record.meta.setdefault("workers_lost", []).append(lost)
                    session.hooks.log(f"chaos-events: WARNING: worker {client_id} lost at t={lost['t']:.1f}s; "
                                      "its data after that is missing, so the verdict cannot pass")
                    if self.active:  # the workers left share the data faults' rate between them
                        self._rebalance()

    def reset(self) -> None:
        """A new run: forget the last one's workers and data faults."""
        self.active.clear()
        self.seen.clear()
