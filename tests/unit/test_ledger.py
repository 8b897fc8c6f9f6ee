"""Ledger: ranges merge whatever the order, counts are distinct writes, wire deltas round-trip, and it stays compact."""
from __future__ import annotations

import json
import random
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos_events.load import acks
from chaos_events.observe.ledger import Ledger, event_id, parse_event_id


def _ranges_of_set(values: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def test_out_of_order_acks_merge_into_ranges():
    ledger = Ledger()
    for seq in (5, 3, 4, 1, 2, 10, 8, 9, 20):
        assert ledger.ack("api", "w1-u1", seq) is True
    assert ledger.ranges("api", "w1-u1") == [(1, 5), (8, 10), (20, 20)]
    assert ledger.count("api") == 9
    # A write acknowledged twice is one write.
    assert ledger.ack("api", "w1-u1", 4) is False
    assert ledger.count() == 9
    ledger.ack("api", "w1-u1", 7)
    ledger.ack("api", "w1-u1", 6)
    assert ledger.ranges("api", "w1-u1") == [(1, 10), (20, 20)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=400))
def test_ranges_equal_the_set_of_acknowledged_seqs(seqs):
    ledger = Ledger()
    for seq in seqs:
        ledger.ack("kafka", "p", seq)
    assert ledger.ranges("kafka", "p") == _ranges_of_set(set(seqs))
    assert ledger.count("kafka") == len(set(seqs))
    assert [s for _, s in ledger.ids("kafka")] == sorted(set(seqs))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=60),
       st.lists(st.integers(0, 250), max_size=60))
def test_merge_wire_of_overlapping_ranges_is_a_set_union(pairs, singles):
    expected: set[int] = set(singles)
    wire_flat: list[int] = []
    for start, length in pairs:
        wire_flat += [start, start + length]
        expected |= set(range(start, start + length + 1))
    ledger = Ledger()
    for s in singles:
        ledger.ack("api", "p", s)
    before = ledger.count()
    added = ledger.merge_wire([["api", "p", wire_flat]])
    assert ledger.ranges("api", "p") == _ranges_of_set(expected)
    assert added == len(expected) - before


def test_channels_and_producers_are_kept_apart():
    ledger = Ledger()
    ledger.ack("api", "a", 1)
    ledger.ack("kafka", "a", 1)
    ledger.ack("kafka", "b", 2)
    assert ledger.count() == 3
    assert ledger.count("api") == 1 and ledger.count("kafka") == 2 and ledger.count("none") == 0
    assert list(ledger.ids("kafka")) == [("a", 1), ("b", 2)]
    assert sorted(ledger.ids()) == [("a", 1), ("a", 1), ("b", 2)]
    assert ledger.contains("kafka", "b", 2) and not ledger.contains("api", "b", 2)


def test_wire_delta_carries_only_what_was_acked_since_the_last_take():
    worker = Ledger()
    for seq in range(1, 101):
        worker.ack("api", "w1-u1", seq)
    first = worker.take_wire_delta()
    assert first == [["api", "w1-u1", [1, 100]]]
    worker.ack("api", "w1-u1", 101)
    worker.ack("kafka", "w1-u2", 7)
    second = json.loads(json.dumps(worker.take_wire_delta()))  # survives a real serialisation
    assert second == [["api", "w1-u1", [101, 101]], ["kafka", "w1-u2", [7, 7]]]
    assert worker.take_wire_delta() == []
    assert worker.count() == 102  # the worker's own view is not emptied by the take

    master = Ledger()
    assert master.merge_wire(first) == 100
    assert master.merge_wire(second) == 2
    assert master.merge_wire(first) == 0  # a repeated delta adds nothing
    assert master.to_wire() == [["api", "w1-u1", [1, 101]], ["kafka", "w1-u2", [7, 7]]]
    assert master.take_wire_delta() == []  # merged writes are not re-sent


def test_to_wire_round_trip():
    ledger = Ledger()
    rng = random.Random(1)
    for _ in range(500):
        ledger.ack(rng.choice(["api", "kafka"]), f"p{rng.randrange(4)}", rng.randrange(300))
    copy = Ledger()
    copy.merge_wire(ledger.to_wire())
    assert copy.to_wire() == ledger.to_wire()
    assert copy.count() == ledger.count()


def test_bad_wire_row_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"ledger wire row for api/p: expected pairs of ints, got 3 values"):
        Ledger().merge_wire([["api", "p", [1, 2, 3]]])


def test_take_delta_without_tracking_says_why():
    with pytest.raises(ValueError, match="track_delta=False"):
        Ledger(track_delta=False).take_wire_delta()


def test_clear_forgets_everything():
    ledger = Ledger()
    ledger.ack("api", "p", 1)
    ledger.clear()
    assert ledger.count() == 0 and ledger.take_wire_delta() == [] and ledger.to_wire() == []


def _deep_size(ledger: Ledger) -> int:
    """sys.getsizeof accounting of everything the ledger holds: dicts, keys, range objects and their arrays."""
    total = sys.getsizeof(ledger)
    for store in (ledger._data, ledger._unsent or {}):
        total += sys.getsizeof(store)
        for channel, per_channel in store.items():
            total += sys.getsizeof(channel) + sys.getsizeof(per_channel)
            for producer, ranges in per_channel.items():
                total += sys.getsizeof(producer) + sys.getsizeof(ranges)
                total += sys.getsizeof(ranges.starts) + sys.getsizeof(ranges.ends)
    return total


def test_a_million_mostly_contiguous_acks_fit_in_under_a_megabyte():
    ledger = Ledger()
    rng = random.Random(42)
    n = 0
    for producer in range(10):
        dropped = set(rng.sample(range(100_000), 200))
        for seq in range(100_000):
            # Mostly contiguous: a few dropped writes and local reordering, as delivery callbacks produce.
            if seq % 97 == 0:
                seq += 1
            elif seq % 97 == 1:
                seq -= 1
            if seq not in dropped:
                ledger.ack("kafka", f"w1-u{producer}", seq)
                n += 1
    assert n == 1_000_000 - 2000
    assert ledger.count() == n
    size = _deep_size(ledger)
    assert size < 1_000_000, f"ledger holds {size} bytes for {n} acks"
    assert ledger.nbytes() < size


def test_event_ids_round_trip():
    assert event_id("w1-u3", 17) == "w1-u3.17"
    assert parse_event_id("host.a.w1-u3.17") == ("host.a.w1-u3", 17)
    assert parse_event_id("no-seq") is None
    assert parse_event_id("p.x1") is None


def test_process_ledger_is_safe_for_native_threads():
    ledger = acks.reset_process_ledger()
    assert acks.process_ledger() is ledger

    def ack_many(producer: str) -> None:
        for seq in range(20_000):
            acks.acknowledge("kafka", producer, seq)

    threads = [threading.Thread(target=ack_many, args=(f"p{i % 2}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.count("kafka") == 40_000
    assert ledger.ranges("kafka", "p0") == [(0, 19_999)]
    acks.reset_process_ledger()
