"""The event generator: shape, determinism under a seed and a fixed clock, and ledger ids."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from chaos_events.load.payloads import EVENT_TYPES, SOURCES, EventGenerator, event_id, new_producer_id, parse_event_id

FIXED = lambda: 1_800_000_000.25  # noqa: E731


def test_event_shape_and_ids():
    gen = EventGenerator("api-00000001", seed=3, clock=FIXED)
    events = [gen.next() for _ in range(200)]
    assert [e["id"] for e in events[:3]] == ["api-00000001.1", "api-00000001.2", "api-00000001.3"]
    assert gen.seq == 200
    for e in events:
        assert set(e) == {"id", "type", "source", "timestamp", "schema_version", "payload"}
        assert e["type"] in EVENT_TYPES and e["source"] in SOURCES
        assert datetime.fromisoformat(e["timestamp"]) == datetime.fromtimestamp(1_800_000_000.25, tz=timezone.utc)
        assert isinstance(e["payload"], dict) and any(isinstance(v, (dict, list)) for v in e["payload"].values())
        json.dumps(e)  # ready for the wire
    assert {e["type"] for e in events} == set(EVENT_TYPES)  # the mix covers every type


def test_same_seed_same_events_different_seed_different_events():
    a = [EventGenerator("p-1", seed=42, clock=FIXED).next() for _ in range(1)]
    one, two, other = (EventGenerator("p-1", seed=s, clock=FIXED) for s in (42, 42, 43))
    first = [one.next() for _ in range(50)]
    assert first == [two.next() for _ in range(50)]
    assert first != [other.next() for _ in range(50)]
    assert a[0] == first[0]


def test_events_match_the_demo_api_schema():
    from chaos_events.demo.schema import Event

    gen = EventGenerator("kafka-0000abcd", seed=1)
    for _ in range(100):
        event = gen.next()
        assert Event.model_validate(event).id == event["id"]


def test_start_seq_and_iteration():
    gen = EventGenerator("p-2", seed=0, start_seq=10)
    assert [e["id"] for e, _ in zip(gen, range(3))] == ["p-2.10", "p-2.11", "p-2.12"]


@pytest.mark.parametrize("bad", ["", "has.dot"])
def test_producer_id_must_be_dotless(bad):
    with pytest.raises(ValueError, match="producer_id must be non-empty and contain no '.'"):
        EventGenerator(bad)


def test_new_producer_id():
    import random

    ids = {new_producer_id("kafka.user", random.Random(i)) for i in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("kafka-user-") and "." not in i for i in ids)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=30), st.integers(0, 10**12))
def test_event_id_round_trip(producer, seq):
    assert parse_event_id(event_id(producer, seq)) == (producer, seq)


@pytest.mark.parametrize("value", ["nodot", ".5", "p.", "p.x", "p.-1", "p.1.5a"])
def test_parse_event_id_rejects_non_ledger_ids(value):
    assert parse_event_id(value) is None


def test_parse_event_id_uses_the_last_dot():
    assert parse_event_id("a.b.7") == ("a.b", 7)
