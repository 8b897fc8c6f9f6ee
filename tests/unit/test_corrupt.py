"""Each bad-payload kind really is what it says, for many seeds, over HTTP and Kafka; and generation is deterministic."""
from __future__ import annotations

import json
import random

import pytest

from chaos_events.load import corrupt
from chaos_events.load.corrupt import API_KINDS, KINDS, POISON_KINDS, make_bad_request, make_poison_message

BASE = {
    "id": "chaos-bad-1",
    "type": "page.viewed",
    "source": "web",
    "timestamp": "2026-01-01T00:00:00.000+00:00",
    "payload": {"session_id": "S1", "page": {"path": "/", "load_ms": 120}},
}
REQUIRED = set(BASE)
SEEDS = range(40)


def _parses(raw: bytes) -> object:
    """Parse as a strict receiver would: decode UTF-8 strictly (a BOM stays a character), then JSON."""
    return json.loads(raw.decode("utf-8"))


def _bodies(kind):
    for seed in SEEDS:
        body, headers = make_bad_request(kind, random.Random(seed), BASE)
        yield body, headers
    for seed in SEEDS:
        value, headers = make_poison_message(kind, random.Random(seed), BASE) if kind in POISON_KINDS else (None, None)
        if value is not None:
            yield value, dict(headers)


def test_kinds_are_the_documented_set():
    assert KINDS == ("invalid-json", "truncated-json", "wrong-content-type", "missing-field", "extra-field", "wrong-type",
                     "future-schema", "invalid-utf8", "wrong-charset", "bom", "oversized")
    assert API_KINDS == KINDS
    assert POISON_KINDS == tuple(k for k in KINDS if k != "oversized")


@pytest.mark.parametrize("kind", ["invalid-json", "truncated-json"])
def test_syntax_kinds_do_not_parse(kind):
    for body, headers in _bodies(kind):
        body.decode("utf-8")  # the bytes are fine; only the JSON is broken
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)


def test_truncated_json_is_a_proper_prefix_of_a_valid_document():
    for seed in SEEDS:
        body, _ = make_bad_request("truncated-json", random.Random(seed), BASE)
        assert 0 < len(body) < len(json.dumps(BASE, separators=(",", ":")))
        assert json.dumps(BASE, separators=(",", ":")).encode().startswith(body)


def test_wrong_content_type_is_valid_json_declared_as_something_else():
    for seed in SEEDS:
        body, headers = make_bad_request("wrong-content-type", random.Random(seed), BASE)
        assert _parses(body) == BASE
        assert "json" not in headers["Content-Type"]
        value, kafka_headers = make_poison_message("wrong-content-type", random.Random(seed), BASE)
        assert b"json" not in dict(kafka_headers)["content-type"]
        with pytest.raises((UnicodeDecodeError, json.JSONDecodeError)):
            _parses(value)


def test_missing_field_lacks_exactly_one_required_field():
    for body, _ in _bodies("missing-field"):
        event = _parses(body)
        assert set(event) < REQUIRED and len(REQUIRED - set(event)) == 1


def test_extra_field_adds_exactly_one_unknown_field():
    for body, _ in _bodies("extra-field"):
        event = _parses(body)
        extra = set(event) - REQUIRED
        assert len(extra) == 1 and next(iter(extra)).startswith("chaos_unexpected_")
        assert {k: event[k] for k in REQUIRED} == BASE


def test_wrong_type_changes_the_json_type_of_one_field():
    for body, _ in _bodies("wrong-type"):
        event = _parses(body)
        changed = [k for k in BASE if type(event[k]) is not type(BASE[k])]
        assert len(changed) == 1
        assert set(event) == REQUIRED


def test_future_schema_names_a_version_far_ahead():
    for body, _ in _bodies("future-schema"):
        event = _parses(body)
        assert event[corrupt.SCHEMA_VERSION_FIELD] >= 100


def test_invalid_utf8_fails_to_decode():
    for body, headers in _bodies("invalid-utf8"):
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        assert headers.get("Content-Type", headers.get("content-type", b"")) in ("application/json", b"application/json")


def test_wrong_charset_is_foreign_text_declared_as_utf8():
    for seed in SEEDS:
        body, headers = make_bad_request("wrong-charset", random.Random(seed), BASE)
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        # ...while it is a perfectly good document in the charset it was really written in.
        event = json.loads(body.decode("cp1252" if b"\x80" in body else "latin-1"))
        assert set(event) == REQUIRED


def test_bom_starts_with_ef_bb_bf_and_a_strict_decoder_refuses_it():
    for body, _ in _bodies("bom"):
        assert body.startswith(b"\xef\xbb\xbf")
        assert json.loads(body[3:]) == BASE
        with pytest.raises(json.JSONDecodeError, match="BOM"):
            json.loads(body.decode("utf-8"))


def test_oversized_is_above_one_mebibyte_and_otherwise_valid():
    for seed in range(5):
        body, headers = make_bad_request("oversized", random.Random(seed), BASE)
        assert len(body) > 1024 * 1024
        assert headers["Content-Type"] == "application/json"
        event = _parses(body)
        assert set(event) == REQUIRED


def test_poison_messages_carry_the_kind_in_a_header():
    for kind in POISON_KINDS:
        _, headers = make_poison_message(kind, random.Random(1), BASE)
        assert dict(headers)["chaos-poison"] == kind.encode()
        assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_bytes_and_base_event_untouched(kind):
    base = json.loads(json.dumps(BASE))
    first = make_bad_request(kind, random.Random(42), base)
    assert make_bad_request(kind, random.Random(42), base) == first
    assert base == BASE
    if kind in POISON_KINDS:
        assert make_poison_message(kind, random.Random(42), base) == make_poison_message(kind, random.Random(42), base)


def test_seeds_vary_the_variant():
    bodies = {make_bad_request("invalid-json", random.Random(seed), BASE)[0] for seed in SEEDS}
    assert len(bodies) >= 4


def test_unknown_kinds_are_refused_with_the_known_ones():
    with pytest.raises(ValueError) as err:
        make_bad_request("invalid-jsn", random.Random(1), BASE)
    assert str(err.value) == "unknown bad-payload kind 'invalid-jsn'; expected one of: " + ", ".join(KINDS)
    with pytest.raises(ValueError) as err:
        make_poison_message("oversized", random.Random(1), BASE)
    assert str(err.value) == "unknown bad-payload kind 'oversized'; expected one of: " + ", ".join(POISON_KINDS)
