"""Where users report acknowledged writes: one process-wide Ledger that the plugin ships to the master and audits.

A user calls `acknowledge("api", producer_id, seq)` after a 2xx from the API, or `acknowledge("kafka", ...)` from the
Kafka delivery callback (which may run on a native thread: the Ledger's lock is a real OS lock). Event ids are
f"{producer_id}.{seq}" everywhere (see observe.ledger.event_id).

Must not import locust, prometheus_client or confluent_kafka: users' code imports it on the hot path.
"""
from __future__ import annotations

from chaos_events.observe.ledger import Ledger, event_id

__all__ = ["acknowledge", "acknowledge_range", "process_ledger", "reset_process_ledger", "event_id"]

_ledger = Ledger()


def acknowledge(channel: str, producer_id: str, seq: int) -> None:
    """Record that the system acknowledged write `producer_id.seq` on `channel` ("api" or "kafka")."""
    _ledger.ack(channel, producer_id, seq)


def acknowledge_range(channel: str, producer_id: str, start: int, end: int) -> None:
    """Record that writes `producer_id.start` .. `producer_id.end` (inclusive) were all acknowledged on `channel`."""
    _ledger.ack_range(channel, producer_id, start, end)


def process_ledger() -> Ledger:
    """The ledger every `acknowledge` in this process writes to."""
    return _ledger


def reset_process_ledger() -> Ledger:
    """Start a fresh ledger (a new test run in the same process, e.g. from the web UI); returns it."""
    global _ledger
    _ledger = Ledger()
    return _ledger
