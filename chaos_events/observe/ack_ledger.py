"""The write ledger's store: which (producer, seq) writes the system acknowledged, per channel, in compact ranges.

`Ledger` keeps acknowledged sequence numbers per channel ("api", "kafka") and producer as sorted, non-overlapping
[start, end] ranges in integer arrays (`Ranges`), so a million mostly-contiguous acknowledgements take a few
kilobytes, and it ships deltas to the master like the recorder does. Also what both audits (kafka_audit.py,
pipeline_audit.py) report when they cannot verify. No I/O. Must not import locust, prometheus_client or docker;
gevent only to undo its patching of the lock (`_native_lock`), and only when it is loaded already.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from typing import Any, Iterable, Iterator

from chaos_events.record import LedgerResult

MAX_EXAMPLES = 5   # lost ids an audit names in its detail


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


class Ranges:
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

    def overlap(self, other: "Ranges") -> int:
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

    def missing_from(self, other: "Ranges", limit: int) -> list[int]:
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
        self._data: dict[str, dict[str, Ranges]] = {}
        self._unsent: dict[str, dict[str, Ranges]] | None = {} if track_delta else None
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
    def _add(store: dict[str, dict[str, Ranges]], channel: str, producer: str, start: int, end: int) -> int:
        per_channel = store.get(channel)
        if per_channel is None:
            per_channel = store[channel] = {}
        ranges = per_channel.get(producer)
        if ranges is None:
            ranges = per_channel[producer] = Ranges()
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
    def _to_wire(store: dict[str, dict[str, Ranges]]) -> list[list[Any]]:
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
    def ranges_of(self, channel: str, producer: str) -> Ranges | None:
        """The live ranges of one producer on `channel` (not a copy), or None."""
        return self._data.get(channel, {}).get(producer)

    def by_producer(self, channel: str | None) -> dict[str, Ranges]:
        """Acknowledged ranges per producer on `channel`; with None, the union over every channel."""
        with self._lock:
            if channel is not None:
                return dict(self._data.get(channel, {}))
            union: dict[str, Ranges] = {}
            for per in self._data.values():
                for producer, ranges in per.items():
                    target = union.setdefault(producer, Ranges())
                    for start, end in ranges.pairs():
                        target.add(start, end)
            return union


def unverifiable(result: LedgerResult, reason: str, checked: int = 0) -> LedgerResult:
    """`result` marked as not verifiable, with the reason (cut to 500 characters) as its detail."""
    result.verifiable = False
    result.checked = checked
    result.detail = reason[:500]
    return result
