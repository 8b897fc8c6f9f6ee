"""Data faults acting from inside the load: the part of a `bad_payloads` fault that runs where the users run (each
worker, or the local runner), started and stopped by the session's broadcasts.

One INFO line per start and stop, so each process's log shows its own part in a data fault (and a worker that
joins mid-fault shows that it took part). May import locust (it is part of the Locust adapters).

Example:
    side = LoadSide(BadTrafficSender(fire)); side.handle(BROADCAST_START, {"fault_id": "f0#1", "url": ..., ...})
"""
from __future__ import annotations

import logging

from locust.runners import WorkerRunner

from chaos_events.backends.bad_traffic import BadTrafficSender
from chaos_events.faults.data import BROADCAST_START, BROADCAST_STOP, BROADCAST_STOP_ALL

logger = logging.getLogger("chaos_events")

BAD_TRAFFIC_MESSAGES = (BROADCAST_START, BROADCAST_STOP, BROADCAST_STOP_ALL)


class LoadSide:
    """Invariant: every fault the sender runs was started by a broadcast and stops at its stop (or stop-all)."""

    def __init__(self, sender: BadTrafficSender):
        self.sender = sender

    def register_on(self, runner, say) -> None:
        """On a worker: take the master's data-fault messages, and its chaos event lines for this process's log."""
        if not isinstance(runner, WorkerRunner):
            return
        for kind in BAD_TRAFFIC_MESSAGES:
            runner.register_message(kind, lambda environment, msg, kind=kind, **kw: self.handle(kind, msg.data))
        runner.register_message("chaos_event", lambda environment, msg, **kw: say(f"chaos-events: {msg.data.get('line', '')}"))

    def handle(self, kind: str, data: dict) -> None:
        if kind == BROADCAST_START:
            rate = float(data["rate_per_s"])
            self.sender.start(data["fault_id"], data["url"], rate, list(data.get("kinds") or []))
            logger.info("chaos-events: data fault %s started here: bad payloads to %s at %.2f/s",
                        data["fault_id"], data["url"], rate)
        elif kind == BROADCAST_STOP:
            self.stop([data["fault_id"]])
        elif kind == BROADCAST_STOP_ALL:
            self.stop(self.sender.active())

    def stop(self, fault_ids: list[str]) -> None:
        for fault_id in fault_ids:
            running = fault_id in self.sender.active()
            self.sender.stop(fault_id)
            if running:
                counts = self.sender.counts(fault_id)
                logger.info("chaos-events: data fault %s stopped here: sent %d bad payloads (%s)",
                            fault_id, sum(counts.values()), " ".join(f"{k}={v}" for k, v in counts.items()))
