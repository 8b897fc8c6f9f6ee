"""The write ledger: which writes the system acknowledged, and whether they can be read back at the end.

One import for the ledger's users; each part lives in its own module:
- `Ledger` (ack_ledger.py) stores acknowledged (producer, seq) pairs per channel ("api", "kafka") as compact ranges
  and ships deltas to the master like the recorder does;
- `audit_kafka` (kafka_audit.py) reads the topic back with a fresh consumer (ids from the chaos-producer/chaos-seq
  headers, or the key "producer.seq") and counts lost and duplicated writes;
- `audit_pipeline` (pipeline_audit.py) asks the platform, as the scenario's `ledger.read_back` says, which ids
  reached the store, waiting for the consumer to catch up;
- `event_id` / `parse_event_id` (load/payloads.py, their one definition): the id a write carries end to end.
The audits are plain blocking functions: under gevent, call them from a native thread (see probes.offload).

Must not import locust, prometheus_client or docker; confluent_kafka is imported lazily inside the Kafka audit.
"""
from __future__ import annotations

from chaos_events.load.payloads import event_id, parse_event_id
from chaos_events.observe.ack_ledger import Ledger
from chaos_events.observe.kafka_audit import (  # noqa: F401  (importable from here, as before the split)
    HEADER_PRODUCER, HEADER_SEQ, QUIET_KAFKA_LOG, audit_kafka, count_tagged, kafka_error_text,
)
from chaos_events.observe.pipeline_audit import audit_pipeline
from chaos_events.record import LedgerResult  # noqa: F401  (run/audit.py builds an unverifiable result from here)

__all__ = ["Ledger", "audit_kafka", "audit_pipeline", "event_id", "parse_event_id"]
