"""The Kafka audit: read the topic back and reconcile it with the write ledger; also counting tagged messages.

`audit_kafka` reads the topic with a fresh consumer of its own (ids from the chaos-producer/chaos-seq headers, or the
key "producer.seq") and counts lost and duplicated writes; `count_tagged` counts messages that carry a header tag
(the poison messages that reached a dead-letter topic). Plain blocking functions: under gevent, call them from a
native thread (see probes.offload). Must not import locust, gevent, prometheus_client or docker; confluent_kafka is
imported lazily inside the functions, so importing the ledger stays light.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chaos_events.load.payloads import HEADER_PRODUCER, HEADER_SEQ, event_id, parse_event_id
from chaos_events.observe import broker_kind
from chaos_events.observe.ack_ledger import MAX_EXAMPLES, Ledger, Ranges, unverifiable
from chaos_events.record import LedgerResult

log = logging.getLogger(__name__)



class _QuietKafkaLog:
    """librdkafka logger: its connection errors repeat every reconnect while a broker is down (which is the point of a
    fault), so they go to debug logging; the probes and audits report the failure themselves."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)


QUIET_KAFKA_LOG = _QuietKafkaLog()


def kafka_error_text(exc: BaseException) -> str:
    """KafkaException carries a KafkaError whose str() is readable; its repr is not."""
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", None)
    return text() if callable(text) else str(error)


def _fresh_consumer(bootstrap: str, **extra: Any) -> Any:
    """A consumer in a group of its own: no commits, no effect on the platform's groups; chatter to debug logging."""
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-audit-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "enable.partition.eof": True, "logger": QUIET_KAFKA_LOG, **extra})


def _remaining(deadline: float, cap: float) -> float:
    return max(0.1, min(cap, deadline - time.monotonic()))


def _ids_from_message(msg: Any) -> tuple[str, int] | None:
    headers = msg.headers() or []
    producer = seq = None
    for key, value in headers:
        if key == HEADER_PRODUCER and value is not None:
            producer = value.decode("utf-8", "replace")
        elif key == HEADER_SEQ and value is not None:
            text = value.decode("ascii", "replace")
            seq = int(text) if text.isdigit() else None
    if producer is not None and seq is not None:
        return producer, seq
    key = msg.key()
    if key:
        return parse_event_id(key.decode("utf-8", "replace"))
    return None


def _compare(acked_by_producer: dict[str, Ranges], seen: Ledger, seen_channel: str) -> tuple[int, list[str]]:
    """(found, a few example lost ids) of the acknowledged ranges against the seen ids."""
    found = 0
    examples: list[str] = []
    for producer, acked in sorted(acked_by_producer.items()):
        got = seen.ranges_of(seen_channel, producer)
        if got is None:
            got = Ranges()
        overlap = acked.overlap(got)
        found += overlap
        if overlap < acked.size and len(examples) < MAX_EXAMPLES:
            examples.extend(event_id(producer, s) for s in acked.missing_from(got, MAX_EXAMPLES - len(examples)))
    return found, examples


@dataclass
class _Scan:
    """What one read of the topic saw: the ids (in a ledger of their own), repeats per producer, partitions not done."""

    seen: Ledger = field(default_factory=lambda: Ledger(track_delta=False))
    duplicates: dict[str, int] = field(default_factory=dict)
    read: int = 0
    unrecognized: int = 0
    pending: set[int] = field(default_factory=set)


def audit_kafka(ledger: Ledger, bootstrap: str, topic: str, deadline_s: float = 30.0, channel: str | None = "kafka") -> LedgerResult:
    """Read `topic` from the beginning up to its end offsets at the start; count acknowledged writes not seen (lost)
    and writes of the ledger's producers seen more than once (duplicates). `channel` None checks every channel.
    Blocking. An unreachable broker gives verifiable=False with the reason.
    """
    from confluent_kafka import KafkaException

    acked_by_producer = ledger.by_producer(channel)
    acknowledged = sum(r.size for r in acked_by_producer.values())
    result = LedgerResult(check="kafka", acknowledged=acknowledged, checked=acknowledged)
    deadline = time.monotonic() + deadline_s
    try:
        consumer = _fresh_consumer(bootstrap, **{"auto.offset.reset": "earliest"})
    except KafkaException as exc:
        return unverifiable(result, f"could not create a Kafka consumer for {bootstrap}: {kafka_error_text(exc)}")
    try:
        return _audit_topic(consumer, result, acked_by_producer, bootstrap, topic, deadline, deadline_s)
    finally:
        consumer.close()


def _audit_topic(consumer: Any, result: LedgerResult, acked_by_producer: dict[str, Ranges], bootstrap: str, topic: str,
                 deadline: float, deadline_s: float) -> LedgerResult:
    """audit_kafka with its consumer: the topic's partitions and end offsets, the read, the tally."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        metadata = consumer.list_topics(timeout=_remaining(deadline, 10.0))
    except KafkaException as exc:
        return unverifiable(result, f"could not reach Kafka at {bootstrap}: {kafka_error_text(exc)}")
    if topic not in metadata.topics:
        # Reachable broker without the topic: everything acknowledged is gone (e.g. a broker restart on memory storage).
        result.lost = result.acknowledged
        result.detail = f"topic '{topic}' does not exist on {bootstrap}; every acknowledged write is lost"
        return result
    partitions = sorted(metadata.topics[topic].partitions)
    # --- Tansu workaround (begin): Tansu may report a high watermark inside the last batch, so "offset >= end"
    # could stop before that batch's last records: against Tansu only the end-of-partition event ends a partition.
    # Apache Kafka's high watermark is exact: a partition is done once its record at end - 1 is read (or at its end).
    exact_end = broker_kind.from_cluster_id(metadata.cluster_id) is broker_kind.BrokerKind.KAFKA
    # --- Tansu workaround (end)
    ends: dict[int, int] = {}
    try:
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_remaining(deadline, 10.0))
            if high > low:
                ends[p] = high
    except KafkaException as exc:
        return unverifiable(result, f"could not read end offsets of '{topic}' on {bootstrap}: {kafka_error_text(exc)}")
    scan = _scan(consumer, topic, ends, exact_end, deadline)
    return _tally(result, acked_by_producer, scan, topic, len(partitions), deadline_s)


def _scan(consumer: Any, topic: str, ends: dict[int, int], exact_end: bool, deadline: float) -> _Scan:
    """Read every partition with records from its beginning to `ends` (or until the deadline)."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    scan = _Scan(pending=set(ends))
    if scan.pending:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(scan.pending)])
    while scan.pending and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=_remaining(deadline, 0.5)):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF and msg.offset() >= ends.get(msg.partition(), 0):
                    scan.pending.discard(msg.partition())
                continue
            if exact_end and msg.offset() >= ends.get(msg.partition(), 0) - 1:
                scan.pending.discard(msg.partition())  # Kafka: the record before the end offset taken at the start
            scan.read += 1
            ident = _ids_from_message(msg)
            if ident is None:
                scan.unrecognized += 1
                continue
            producer, seq = ident
            if not scan.seen.ack(topic, producer, seq):
                scan.duplicates[producer] = scan.duplicates.get(producer, 0) + 1
    return scan


def _tally(result: LedgerResult, acked_by_producer: dict[str, Ranges], scan: _Scan, topic: str, partitions: int,
           deadline_s: float) -> LedgerResult:
    """Found, lost and duplicated writes of the scan against the ledger, and the detail that explains them."""
    found, examples = _compare(acked_by_producer, scan.seen, topic)
    known = set(acked_by_producer)
    result.found = found
    result.lost = result.acknowledged - found
    result.duplicates = sum(n for producer, n in scan.duplicates.items() if producer in known)
    parts = [f"read {scan.read} messages from {partitions} partitions of '{topic}'"]
    if scan.unrecognized:
        parts.append(f"{scan.unrecognized} without a chaos id")
    if examples:
        parts.append(("not seen yet e.g. " if scan.pending else "lost e.g. ") + ", ".join(examples))
    if scan.pending:
        # A partial read proves nothing missing: report what was not seen yet, but count no write as lost.
        result.verifiable = False
        parts.append(f"partitions {sorted(scan.pending)} not read to their end within {deadline_s:g}s "
                     f"({result.lost} acknowledged writes not seen yet)")
        result.lost = 0
    result.detail = "; ".join(parts)
    return result


def count_tagged(bootstrap: str, topic: str, header: str, tags: set[str], expected: int,
                 deadline_s: float = 30.0) -> int | None:
    """How many messages in `topic` carry `header` with one of `tags`; re-reads until `expected` are there or the
    deadline passes (the platform dead-letters at its own pace). None when Kafka cannot be read. Blocking.

    Partitions are assigned, not subscribed: no group join to wait for (Apache Kafka's takes a rebalance, Tansu holds
    one for half the session timeout), and no effect on the platform's own groups.
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    wanted = {t.encode() for t in tags}
    deadline = time.monotonic() + deadline_s
    count = 0
    while True:
        try:
            consumer = _fresh_consumer(bootstrap)
        except KafkaException:
            return None
        try:
            metadata = consumer.list_topics(timeout=_remaining(deadline, 10.0))
            partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            pending, count = set(partitions), 0
            while pending and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=1000, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(msg.partition())
                        continue
                    if any(k == header and v in wanted for k, v in (msg.headers() or [])):
                        count += 1
        except KafkaException:
            return None
        finally:
            consumer.close()
        if count >= expected or time.monotonic() >= deadline:
            return count
        time.sleep(0.5)  # the platform is still dead-lettering: read the topic again
