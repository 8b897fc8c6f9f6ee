"""The demo consumer process: reads `events`, stores them in SQLite, and dead-letters poison messages.

Run as `python -m chaos_events.demo.consumer --bootstrap HOST:PORT --store PATH`. Imports confluent_kafka, pydantic (via
chaos_events.demo.schema) and the standard library; never locust or gevent.

Guarantees: a write is idempotent (INSERT OR IGNORE on the event id); offsets are committed only after the batch
is in the store and its poison messages are in the dead-letter topic (at-least-once); a poison message (bad UTF-8,
not JSON, schema mismatch) goes to `events.dlq` with a `chaos-dlq-reason` header and is counted, never crashes
the loop. A heartbeat row, written every second, tells the API the consumer is alive and how far behind it is.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, Producer
from pydantic import ValidationError

from chaos_events.demo import store
from chaos_events.demo.schema import Event

HEARTBEAT_EVERY_S = 1.0
HEARTBEAT_NAME = "consumer"


def classify(value: bytes | None) -> tuple[Event | None, str | None]:
    """(event, None) for a valid message, (None, reason) for a poison one."""
    if value is None:
        return None, "empty"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None, "bad-utf8"
    try:
        data = json.loads(text)
    except ValueError:
        return None, "not-json"
    if not isinstance(data, dict):
        return None, "schema-mismatch"
    try:
        return Event.model_validate(data), None
    except ValidationError:
        return None, "schema-mismatch"


class StoreConsumer:
    def __init__(self, bootstrap: str, store_path: str, topic: str, dlq_topic: str, group: str):
        self.topic, self.dlq_topic = topic, dlq_topic
        self.db = store.connect(store_path, create=True)
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Kafka's minimum (group.min.session.timeout.ms): a killed consumer's partitions move within 6 s, not 45.
            # Tansu also holds a join for about half the session timeout, so it keeps Tansu's joins short too.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "client.id": "demo-consumer",
        })
        self.dlq = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 5000, "client.id": "demo-consumer-dlq",
        })
        self.running = True
        self.consumed = 0
        self.assigned: list = []

    def _on_assign(self, _consumer, partitions):
        self.assigned = list(partitions)

    def _on_revoke(self, _consumer, _partitions):
        self.assigned = []

    def lag(self) -> int | None:
        """Messages behind the high watermark last seen in fetch responses (cached: never blocks)."""
        if not self.assigned:
            return None
        total = 0
        try:
            for tp in self.consumer.position(self.assigned):
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue
                pos = tp.offset if tp.offset != OFFSET_INVALID else low
                total += max(0, high - max(pos, 0))
        except Exception:
            return None
        return total

    def handle(self, messages) -> None:
        rows, dlq_reasons = [], Counter()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    print(f"consumer: kafka error: {err}", file=sys.stderr, flush=True)
                continue
            event, reason = classify(msg.value())
            if event is None:
                self.dlq.produce(
                    self.dlq_topic, value=msg.value(), key=msg.key(),
                    # The original headers travel with the message, as a dead-letter topic should keep them.
                    headers=[*(msg.headers() or []), ("chaos-dlq-reason", reason),
                             ("chaos-dlq-origin", f"{msg.topic()}/{msg.partition()}/{msg.offset()}")],
                )
                self.dlq.poll(0)
                dlq_reasons[reason] += 1
                continue
            rows.append((event.id, event.type, event.source, event.timestamp.isoformat(), json.dumps(event.payload, separators=(",", ":")), msg.partition(), msg.offset()))
        if rows:
            store.insert_events(self.db, rows)
            self.consumed += len(rows)
        if dlq_reasons:
            remaining = self.dlq.flush(10)
            if remaining:
                # Not committing keeps the poison message for the next attempt rather than losing it.
                raise RuntimeError(f"{remaining} dead-letter messages not delivered within 10 s")
            store.count_dlq(self.db, dlq_reasons)
        if rows or dlq_reasons:
            # Asynchronous: a paused broker must not stall the heartbeat; the store write is idempotent anyway.
            self.consumer.commit(asynchronous=True)

    def run(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        store.beat(self.db, HEARTBEAT_NAME, os.getpid(), None, 0, 0)
        print("consumer ready", flush=True)
        last_beat = 0.0
        try:
            while self.running:
                messages = self.consumer.consume(num_messages=500, timeout=0.5)
                if messages:
                    try:
                        self.handle(messages)
                    except Exception as exc:  # never crash on one batch; rewind so it is retried
                        print(f"consumer: batch failed, will retry: {exc!r}", file=sys.stderr, flush=True)
                        self._rewind(messages)
                        time.sleep(0.5)
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT_EVERY_S:
                    store.beat(self.db, HEARTBEAT_NAME, os.getpid(), self.lag(), self.consumed, len(self.assigned))
                    last_beat = now
                self.dlq.poll(0)
        finally:
            self.consumer.close()

    def _rewind(self, messages) -> None:
        from confluent_kafka import TopicPartition

        first: dict[tuple[str, int], int] = {}
        for msg in messages:
            if msg.error() is None:
                first.setdefault((msg.topic(), msg.partition()), msg.offset())
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except Exception as exc:
                print(f"consumer: seek failed: {exc!r}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_events.demo.consumer", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--topic", default="events")
    parser.add_argument("--dlq-topic", default="events.dlq")
    parser.add_argument("--group", default="events-store")
    args = parser.parse_args(argv)
    worker = StoreConsumer(args.bootstrap, args.store, args.topic, args.dlq_topic, args.group)

    def _stop(_signum, _frame):
        worker.running = False

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
