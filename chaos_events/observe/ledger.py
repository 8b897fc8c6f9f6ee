"""The write ledger: which writes the system acknowledged, and whether they can be read back at the end.

`Ledger` stores acknowledged (producer, seq) pairs per channel ("api", "kafka") as sorted, non-overlapping [start, end]
ranges in compact integer arrays, so a million mostly-contiguous acknowledgements take a few kilobytes, and it ships
deltas to the master like the recorder does. The audits reconcile it with what the system holds:
- `audit_kafka` reads the topic back with a fresh consumer (ids from the chaos-producer/chaos-seq headers, or the key
  "producer.seq") and counts lost and duplicated writes;
- `audit_pipeline` asks the platform, as the scenario's `ledger.read_back` says, which ids reached the store,
  waiting for the consumer to catch up.
The audits are plain blocking functions: under gevent, call them from a native thread (see probes.offload).

Must not import locust, prometheus_client or docker; confluent_kafka is imported lazily inside audit_kafka.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from array import array
from bisect import bisect_left, bisect_right
from typing import Any, Callable, Iterable, Iterator

from chaos_events.observe import broker_kind
from chaos_events.record import LedgerResult

__all__ = ["Ledger", "audit_kafka", "audit_pipeline", "event_id", "parse_event_id"]

log = logging.getLogger(__name__)


class _QuietKafkaLog:
    """librdkafka logger: its connection errors repeat every reconnect while a broker is down (which is the point of a
    fault), so they go to debug logging; the probes and audits report the failure themselves."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)


QUIET_KAFKA_LOG = _QuietKafkaLog()

HEADER_PRODUCER = "chaos-producer"
HEADER_SEQ = "chaos-seq"
_MAX_EXAMPLES = 5


def event_id(producer_id: str, seq: int) -> str:
    """The id a write carries end to end: 'producer.seq'."""
    return f"{producer_id}.{seq}"


def parse_event_id(text: str) -> tuple[str, int] | None:
    """'w1-u3.17' -> ('w1-u3', 17); None when it is not of that shape (the producer may contain dots)."""
    producer, dot, seq = text.rpartition(".")
    if not dot or not producer or not seq.isdigit():
        return None
    return producer, int(seq)


def _native_lock() -> Any:
    """A real OS lock even when gevent has monkey-patched threading.

    The Kafka delivery callback may run on a native thread; a gevent lock there would belong to the wrong hub. Our
    critical sections never yield, so a greenlet waits on this lock for microseconds at most.
    """
    import sys

    if "gevent.monkey" not in sys.modules:  # nothing patched: the plain lock is the native one
        import _thread

        return _thread.allocate_lock()
    from gevent.monkey import get_original  # only to undo patching; no scheduling here

    return get_original("_thread", "allocate_lock")()


class _Ranges:
    """Sorted, non-overlapping, non-adjacent inclusive ranges of ints: starts[i] <= ends[i] < starts[i+1] - 1."""

    __slots__ = ("starts", "ends", "size")

    def __init__(self) -> None:
        self.starts = array("q")
        self.ends = array("q")
        self.size = 0

    def add(self, start: int, end: int) -> int:
        """Add [start, end]; return how many of its ints were new."""
        starts, ends = self.starts, self.ends
        n = len(ends)
        # Fast paths: acknowledgements mostly arrive in order.
        if n == 0 or start > ends[-1] + 1:
            starts.append(start)
            ends.append(end)
            self.size += end - start + 1
            return end - start + 1
        if start == ends[-1] + 1:
            ends[-1] = end
            self.size += end - start + 1
            return end - start + 1
        lo = bisect_left(ends, start - 1)   # first range that ends at or after start - 1: touches or overlaps
        hi = bisect_right(starts, end + 1)  # first range that starts after end + 1
        if lo >= hi:
            starts.insert(lo, start)
            ends.insert(lo, end)
            self.size += end - start + 1
            return end - start + 1
        covered = 0
        for k in range(lo, hi):
            overlap = min(ends[k], end) - max(starts[k], start) + 1
            if overlap > 0:
                covered += overlap
        new_start = min(start, starts[lo])
        new_end = max(end, ends[hi - 1])
        del starts[lo + 1:hi]
        del ends[lo + 1:hi]
        starts[lo] = new_start
        ends[lo] = new_end
        added = (end - start + 1) - covered
        self.size += added
        return added

    def contains(self, value: int) -> bool:
        i = bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]

    def pairs(self) -> Iterator[tuple[int, int]]:
        return zip(self.starts, self.ends)

    def flat(self) -> list[int]:
        out: list[int] = []
        for start, end in zip(self.starts, self.ends):
            out.append(start)
            out.append(end)
        return out

    def overlap(self, other: "_Ranges") -> int:
        """How many ints are in both."""
        a_s, a_e, b_s, b_e = self.starts, self.ends, other.starts, other.ends
        i = j = 0
        total = 0
        while i < len(a_s) and j < len(b_s):
            lo = max(a_s[i], b_s[j])
            hi = min(a_e[i], b_e[j])
            if hi >= lo:
                total += hi - lo + 1
            if a_e[i] < b_e[j]:
                i += 1
            else:
                j += 1
        return total

    def missing_from(self, other: "_Ranges", limit: int) -> list[int]:
        """Up to `limit` ints of self that are not in other."""
        out: list[int] = []
        for start, end in self.pairs():
            value = start
            while value <= end and len(out) < limit:
                j = bisect_right(other.starts, value) - 1
                if j >= 0 and value <= other.ends[j]:
                    value = other.ends[j] + 1
                    continue
                out.append(value)
                value += 1
            if len(out) >= limit:
                break
        return out

    def nbytes(self) -> int:
        return self.starts.itemsize * (len(self.starts) + len(self.ends))


class Ledger:
    """Acknowledged writes per (channel, producer), as ranges of sequence numbers.

    Invariant: `count(channel)` is the number of distinct (producer, seq) acknowledged on that channel; acknowledging
    the same write twice counts it once. Acks since the last `take_wire_delta()` are kept apart for the master.

    Example:
        ledger = Ledger()
        for seq in (1, 2, 3, 5): ledger.ack("api", "w1-u1", seq)
        ledger.count("api") == 4 and ledger.ranges("api", "w1-u1") == [(1, 3), (5, 5)]
    """

    def __init__(self, track_delta: bool = True):
        self._data: dict[str, dict[str, _Ranges]] = {}
        self._unsent: dict[str, dict[str, _Ranges]] | None = {} if track_delta else None
        self._lock = _native_lock()

    # -- writing ------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget everything, the unsent delta included (a new run in the same process)."""
        with self._lock:
            self._data = {}
            if self._unsent is not None:
                self._unsent = {}

    def ack(self, channel: str, producer_id: str, seq: int) -> bool:
        """Record one acknowledged write; True if it was not acknowledged before."""
        with self._lock:
            per_channel = self._data.get(channel)
            ranges = per_channel.get(producer_id) if per_channel is not None else None
            if ranges is None:
                added = self._add(self._data, channel, producer_id, seq, seq)
            else:
                added = ranges.add(seq, seq)
            # A repeat is already in the ledger, and so either sent or still unsent: only new writes go to the delta.
            if added and self._unsent is not None:
                self._add(self._unsent, channel, producer_id, seq, seq)
            return added > 0

    def ack_range(self, channel: str, producer_id: str, start: int, end: int) -> int:
        """Record acknowledged writes start..end (inclusive) at once, as `ack` does each; returns how many were new.

        The whole range goes to the delta when any of it was new: the master's merge is a union, so a repeat is harmless.
        """
        with self._lock:
            added = self._add(self._data, channel, producer_id, start, end)
            if added and self._unsent is not None:
                self._add(self._unsent, channel, producer_id, start, end)
            return added

    @staticmethod
    def _add(store: dict[str, dict[str, _Ranges]], channel: str, producer: str, start: int, end: int) -> int:
        per_channel = store.get(channel)
        if per_channel is None:
            per_channel = store[channel] = {}
        ranges = per_channel.get(producer)
        if ranges is None:
            ranges = per_channel[producer] = _Ranges()
        return ranges.add(start, end)

    # -- reading ------------------------------------------------------------------------------------
    def count(self, channel: str | None = None) -> int:
        """Distinct acknowledged writes on `channel`, or on every channel."""
        with self._lock:
            return sum(r.size for ch, per in self._data.items() if channel is None or ch == channel for r in per.values())

    def channels(self) -> list[str]:
        return sorted(self._data)

    def producers(self, channel: str) -> list[str]:
        return sorted(self._data.get(channel, {}))

    def ranges(self, channel: str, producer_id: str) -> list[tuple[int, int]]:
        ranges = self._data.get(channel, {}).get(producer_id)
        return list(ranges.pairs()) if ranges else []

    def contains(self, channel: str, producer_id: str, seq: int) -> bool:
        ranges = self._data.get(channel, {}).get(producer_id)
        return bool(ranges) and ranges.contains(seq)

    def ids(self, channel: str | None = None) -> Iterator[tuple[str, int]]:
        """Every acknowledged (producer, seq) on `channel` (or all channels), by producer then seq."""
        with self._lock:
            snapshot = [
                (producer, list(r.pairs()))
                for ch in sorted(self._data) if channel is None or ch == channel
                for producer, r in sorted(self._data[ch].items())
            ]
        for producer, pairs in snapshot:
            for start, end in pairs:
                for seq in range(start, end + 1):
                    yield producer, seq

    def nbytes(self) -> int:
        """Bytes held by the range arrays (both the ledger and the unsent delta)."""
        stores = [self._data] + ([self._unsent] if self._unsent is not None else [])
        return sum(r.nbytes() for store in stores for per in store.values() for r in per.values())

    # -- wire (report_to_master; msgpack-friendly: lists, str, int) -------------------------------------
    @staticmethod
    def _to_wire(store: dict[str, dict[str, _Ranges]]) -> list[list[Any]]:
        return [[ch, producer, r.flat()] for ch, per in sorted(store.items()) for producer, r in sorted(per.items())]

    def to_wire(self) -> list[list[Any]]:
        """Everything: [[channel, producer, [start0, end0, start1, end1, ...]], ...]."""
        with self._lock:
            return self._to_wire(self._data)

    def take_wire_delta(self) -> list[list[Any]]:
        """What was acknowledged since the last call (same form as to_wire); then forget it."""
        if self._unsent is None:
            raise ValueError("this Ledger was created with track_delta=False; it has no delta to take")
        with self._lock:
            rows = self._to_wire(self._unsent)
            self._unsent = {}
            return rows

    def merge_wire(self, rows: Iterable[list[Any]]) -> int:
        """Fold rows from to_wire/take_wire_delta into this ledger; return how many writes were new.

        Merged writes are someone else's: they do not go into this ledger's own delta.
        """
        added = 0
        with self._lock:
            for channel, producer, flat in rows:
                if len(flat) % 2:
                    raise ValueError(f"ledger wire row for {channel}/{producer}: expected pairs of ints, got {len(flat)} values")
                for i in range(0, len(flat), 2):
                    added += self._add(self._data, str(channel), str(producer), int(flat[i]), int(flat[i + 1]))
        return added

    # -- comparison (for the audits) --------------------------------------------------------------------
    def _ranges_of(self, channel: str, producer: str) -> _Ranges | None:
        return self._data.get(channel, {}).get(producer)

    def _by_producer(self, channel: str | None) -> dict[str, _Ranges]:
        """Acknowledged ranges per producer on `channel`; with None, the union over every channel."""
        with self._lock:
            if channel is not None:
                return dict(self._data.get(channel, {}))
            union: dict[str, _Ranges] = {}
            for per in self._data.values():
                for producer, ranges in per.items():
                    target = union.setdefault(producer, _Ranges())
                    for start, end in ranges.pairs():
                        target.add(start, end)
            return union


# ---------------------------------------------------------------------------------------------------------
# Kafka read-back
# ---------------------------------------------------------------------------------------------------------
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


def _compare(acked_by_producer: dict[str, _Ranges], seen: Ledger, seen_channel: str) -> tuple[int, list[str]]:
    """(found, a few example lost ids) of the acknowledged ranges against the seen ids."""
    found = 0
    examples: list[str] = []
    for producer, acked in sorted(acked_by_producer.items()):
        got = seen._ranges_of(seen_channel, producer)
        if got is None:
            got = _Ranges()
        overlap = acked.overlap(got)
        found += overlap
        if overlap < acked.size and len(examples) < _MAX_EXAMPLES:
            examples.extend(event_id(producer, s) for s in acked.missing_from(got, _MAX_EXAMPLES - len(examples)))
    return found, examples


def audit_kafka(ledger: Ledger, bootstrap: str, topic: str, deadline_s: float = 30.0, channel: str | None = "kafka") -> LedgerResult:
    """Read `topic` from the beginning up to its end offsets at the start; count acknowledged writes not seen (lost)
    and writes of the ledger's producers seen more than once (duplicates). `channel` None checks every channel.
    Blocking. An unreachable broker gives verifiable=False with the reason.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

    acked_by_producer = ledger._by_producer(channel)
    acknowledged = sum(r.size for r in acked_by_producer.values())
    result = LedgerResult(check="kafka", acknowledged=acknowledged, checked=acknowledged)
    deadline = time.monotonic() + deadline_s

    def remaining(cap: float) -> float:
        return max(0.1, min(cap, deadline - time.monotonic()))

    try:
        consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-audit-{uuid.uuid4().hex}",  # a group of its own: no commits, no effect on others
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "logger": QUIET_KAFKA_LOG,  # librdkafka's reconnect chatter: debug logging, not stderr
        })
    except KafkaException as exc:
        return _unverifiable(result, f"could not create a Kafka consumer for {bootstrap}: {kafka_error_text(exc)}")
    seen = Ledger(track_delta=False)
    duplicates: dict[str, int] = {}
    read = unrecognized = 0
    try:
        try:
            metadata = consumer.list_topics(timeout=remaining(10.0))
        except KafkaException as exc:
            return _unverifiable(result, f"could not reach Kafka at {bootstrap}: {kafka_error_text(exc)}")
        if topic not in metadata.topics:
            # Reachable broker without the topic: everything acknowledged is gone (e.g. a broker restart on memory storage).
            result.lost = acknowledged
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
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=remaining(10.0))
                if high > low:
                    ends[p] = high
        except KafkaException as exc:
            return _unverifiable(result, f"could not read end offsets of '{topic}' on {bootstrap}: {kafka_error_text(exc)}")
        pending = set(ends)
        if pending:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=remaining(0.5)):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF and msg.offset() >= ends.get(msg.partition(), 0):
                        pending.discard(msg.partition())
                    continue
                if exact_end and msg.offset() >= ends.get(msg.partition(), 0) - 1:
                    pending.discard(msg.partition())  # Kafka: the record before the end offset taken at the start
                read += 1
                ident = _ids_from_message(msg)
                if ident is None:
                    unrecognized += 1
                    continue
                producer, seq = ident
                if not seen.ack(topic, producer, seq):
                    duplicates[producer] = duplicates.get(producer, 0) + 1
        found, examples = _compare(acked_by_producer, seen, topic)
        known = set(acked_by_producer)
        result.found = found
        result.lost = acknowledged - found
        result.duplicates = sum(n for producer, n in duplicates.items() if producer in known)
        parts = [f"read {read} messages from {len(partitions)} partitions of '{topic}'"]
        if unrecognized:
            parts.append(f"{unrecognized} without a chaos id")
        if examples:
            parts.append(("not seen yet e.g. " if pending else "lost e.g. ") + ", ".join(examples))
        if pending:
            # A partial read proves nothing missing: report what was not seen yet, but count no write as lost.
            result.verifiable = False
            parts.append(f"partitions {sorted(pending)} not read to their end within {deadline_s:g}s "
                         f"({result.lost} acknowledged writes not seen yet)")
            result.lost = 0
        result.detail = "; ".join(parts)
        return result
    finally:
        consumer.close()


def count_tagged(bootstrap: str, topic: str, header: str, tags: set[str], expected: int,
                 deadline_s: float = 30.0) -> int | None:
    """How many messages in `topic` carry `header` with one of `tags`; re-reads until `expected` are there or the
    deadline passes (the platform dead-letters at its own pace). None when Kafka cannot be read. Blocking.

    Partitions are assigned, not subscribed: no group join to wait for (Apache Kafka's takes a rebalance, Tansu holds
    one for half the session timeout), and no effect on the platform's own groups.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

    wanted = {t.encode() for t in tags}
    deadline = time.monotonic() + deadline_s
    count = 0
    while True:
        try:
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-audit-{uuid.uuid4().hex}",
                                 "enable.auto.commit": False, "enable.partition.eof": True, "logger": QUIET_KAFKA_LOG})
        except KafkaException:
            return None
        try:
            metadata = consumer.list_topics(timeout=max(0.1, min(10.0, deadline - time.monotonic())))
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


def kafka_error_text(exc: BaseException) -> str:
    """KafkaException carries a KafkaError whose str() is readable; its repr is not."""
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", None)
    return text() if callable(text) else str(error)


def _unverifiable(result: LedgerResult, reason: str, checked: int = 0) -> LedgerResult:
    result.verifiable = False
    result.checked = checked
    result.detail = reason[:500]
    return result


# ---------------------------------------------------------------------------------------------------------
# Pipeline read-back (API -> Kafka -> consumer -> store)
# ---------------------------------------------------------------------------------------------------------
class _LookupError(Exception):
    pass


def _lookup(read_back: Any, ids: list[str], timeout_s: float) -> set[str]:
    """The ids (of `ids`) the platform has: one batch POST, or one GET per id for a `{id}` template."""
    if "{id}" in read_back.url:
        return {ident for ident in ids if _get_found(read_back, ident, timeout_s)}
    url = read_back.url
    body = json.dumps({read_back.ids_field: ids}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _LookupError(f"POST {url} answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise _LookupError(f"POST {url} failed: {exc}") from exc
    found = payload.get(read_back.found_field) if isinstance(payload, dict) else None
    if not isinstance(found, list):
        raise _LookupError(f'POST {url}: expected {{"{read_back.found_field}": [...]}}, got {str(payload)[:200]}')
    return {str(i) for i in found}


def _get_found(read_back: Any, ident: str, timeout_s: float) -> bool:
    url = read_back.url.replace("{id}", urllib.parse.quote(ident, safe=""))
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status in read_back.found_status
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        if exc.code in read_back.found_status:
            return True
        raise _LookupError(f"GET {url} answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise _LookupError(f"GET {url} failed: {exc}") from exc


def _sampled(ledger: Ledger, channel: str | None, fraction: float) -> Iterator[str]:
    # crc32 of the id: the same writes are sampled on every run and every retry, with no state to keep.
    threshold = int(fraction * 1_000_000)
    for producer, seq in ledger.ids(channel):
        ident = event_id(producer, seq)
        if fraction >= 1.0 or zlib.crc32(ident.encode()) % 1_000_000 < threshold:
            yield ident


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def audit_pipeline(
    ledger: Ledger,
    read_back: Any,
    deadline_s: float = 30.0,
    channel: str | None = None,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> LedgerResult:
    """Check that acknowledged writes reached the store, as the scenario's `ledger.read_back` (a ReadBack) says:
    POST batches of ids to its url (or GET its `{id}` template per id), then retry the missing ones until
    `deadline_s` (the consumer may lag). `channel` None checks every channel. `read_back.sample` < 1 checks a
    deterministic sample. Blocking.
    """
    fraction, batch = read_back.sample, read_back.batch
    acknowledged = ledger.count(channel)
    result = LedgerResult(check="pipeline", acknowledged=acknowledged)
    deadline = time.monotonic() + deadline_s
    missing: list[str] = []
    checked = 0
    last_error = ""

    def lookup(ids: list[str]) -> set[str] | None:
        nonlocal last_error
        try:
            return _lookup(read_back, ids, timeout_s=max(0.5, min(timeout_s, deadline - time.monotonic())))
        except _LookupError as exc:
            last_error = str(exc)[:300]
            return None

    # First pass over every sampled id; only the missing ones are kept, so memory follows losses, not writes.
    for chunk in _batches(_sampled(ledger, channel, fraction), batch):
        found = lookup(chunk)
        while found is None:
            if time.monotonic() >= deadline:
                reason = f"could not check every write before the deadline ({deadline_s:g}s): {last_error}"
                return _unverifiable(result, reason, checked=checked)
            sleep(0.5)
            found = lookup(chunk)
        checked += len(chunk)
        missing.extend(i for i in chunk if i not in found)
    # Then wait for the consumer to catch up on what was missing.
    while missing and time.monotonic() < deadline:
        sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        still: list[str] = []
        for chunk in _batches(missing, batch):
            found = lookup(chunk)
            still.extend(chunk if found is None else (i for i in chunk if i not in found))
        missing = still
    result.checked = checked
    result.lost = len(missing)
    result.found = checked - len(missing)
    parts = [f"checked {checked} of {acknowledged} acknowledged writes" + (f" (sample {fraction:g})" if fraction < 1 else "")]
    if missing:
        parts.append("lost e.g. " + ", ".join(missing[:_MAX_EXAMPLES]))
        if last_error:
            parts.append(f"last error: {last_error}")
    result.detail = "; ".join(parts)
    return result
