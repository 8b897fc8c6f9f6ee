"""The Kafka user's acknowledgements: deliveries acknowledged as ranges of consecutive sequence numbers must leave the
ledger exactly as one `ack` per message would, whatever order the partitions report them in."""
from __future__ import annotations

import random

import pytest

from chaos_events.load import acks
from chaos_events.locust_plugin import kafka_producer
from chaos_events.observe.ledger import Ledger


@pytest.fixture
def ledger():
    fresh = acks.reset_process_ledger()
    yield fresh
    acks.reset_process_ledger()


def test_ack_range_equals_one_ack_each_and_counts_only_new_writes():
    ranged, each = Ledger(), Ledger()
    assert ranged.ack_range("kafka", "p", 3, 7) == 5
    assert ranged.ack_range("kafka", "p", 6, 9) == 2  # 6 and 7 were there already
    for seq in range(3, 10):
        each.ack("kafka", "p", seq)
    assert ranged.ranges("kafka", "p") == each.ranges("kafka", "p") == [(3, 9)]
    assert ranged.count("kafka") == each.count("kafka") == 7
    assert ranged.take_wire_delta() == each.take_wire_delta() == [["kafka", "p", [3, 9]]]
    assert ranged.ack_range("kafka", "p", 4, 5) == 0 and ranged.take_wire_delta() == []


def test_deliveries_out_of_order_and_repeated_are_acknowledged_as_each_alone(ledger):
    rng = random.Random(7)
    delivered = {"a": [s for s in range(1, 400) if s % 17], "b": list(range(50, 60)) + [5, 5, 61]}
    for seqs in delivered.values():
        rng.shuffle(seqs)
    expected = Ledger()
    for producer, seqs in delivered.items():
        for seq in seqs:
            expected.ack("kafka", producer, seq)

    kafka_producer._ack_all({producer: list(seqs) for producer, seqs in delivered.items()})

    assert ledger.count("kafka") == expected.count("kafka") == 399 - 23 + 12
    for producer in delivered:
        assert ledger.ranges("kafka", producer) == expected.ranges("kafka", producer)
    assert ledger.ranges("kafka", "a")[:2] == [(1, 16), (18, 33)]
