"""Bad payloads, one generator per kind: what a broken client or producer would send to the platform.

Pure module: standard library only (json, random). No I/O, no gevent, locust, docker, confluent_kafka or
prometheus_client. Every function is deterministic for a given `random.Random` state, so a run can be replayed.

`make_bad_request(kind, rng, base_event)` returns an HTTP body and headers; `make_poison_message(kind, rng,
base_event)` returns a Kafka value and headers. `base_event` should be a *valid* event holding only the fields the
schema requires: missing-field removes one of them, wrong-type retypes one, so each kind is wrong in exactly one way.

Example:
    body, headers = make_bad_request("truncated-json", random.Random(7), {"id": "x", "type": "click"})
    json.loads(body)  # raises: the document was cut short
"""
from __future__ import annotations

import json
import random
from typing import Any, Mapping

KINDS: tuple[str, ...] = (
    "invalid-json",        # syntax errors: trailing comma, single quotes, unquoted key, extra brace, comment
    "truncated-json",      # a valid document cut short, as a dropped connection or a buffer bug would
    "wrong-content-type",  # a valid JSON body declared as something else (HTTP); a foreign encoding (Kafka)
    "missing-field",       # one required field removed
    "extra-field",         # one field the schema does not know
    "wrong-type",          # one field given a JSON type that no lax coercion accepts
    "future-schema",       # a schema version this platform does not speak yet
    "invalid-utf8",        # bytes that are not UTF-8 inside a string value
    "wrong-charset",       # Latin-1 / cp1252 text declared as UTF-8
    "bom",                 # a UTF-8 byte-order mark before the document (RFC 8259 forbids sending one)
    "oversized",           # a body above 1 MiB
)
API_KINDS: tuple[str, ...] = KINDS
# A value above the producer's message.max.bytes (about 1 MB) is refused by the client, never reaching the topic.
POISON_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "oversized")

OVERSIZED_MIN_BYTES = 1024 * 1024 + 1
SCHEMA_VERSION_FIELD = "schema_version"
UTF8_BOM = b"\xef\xbb\xbf"

_JSON = "application/json"
_INVALID_UTF8 = (b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80", b"caf\xe9 ")
_WRONG_CONTENT_TYPES = ("text/plain", "application/xml", "application/x-www-form-urlencoded", "text/csv")
# (text, codec): each encodes to bytes that are not valid UTF-8.
_FOREIGN_TEXT = (("café crème", "latin-1"), ("€5 über Straße", "cp1252"), ("naïve façade", "latin-1"))
_MARKER = "\u0000CHAOS-MARKER\u0000"


def make_bad_request(kind: str, rng: random.Random, base_event: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """One bad HTTP request body of `kind` and the headers to send with it."""
    _check_kind(kind, API_KINDS)
    event = _copy(base_event)
    if kind == "wrong-content-type":
        return _dumps(event), {"Content-Type": rng.choice(_WRONG_CONTENT_TYPES)}
    if kind == "wrong-charset":
        body, _ = _foreign_charset(event, rng)
        return body, {"Content-Type": "application/json; charset=utf-8"}
    return _common(kind, rng, event), {"Content-Type": _JSON}


def make_poison_message(kind: str, rng: random.Random, base_event: Mapping[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """One poison Kafka message value of `kind` and its headers (`chaos-poison` names the kind)."""
    _check_kind(kind, POISON_KINDS)
    event = _copy(base_event)
    headers: list[tuple[str, bytes]] = [("chaos-poison", kind.encode())]
    if kind == "wrong-content-type":
        # A producer on the wrong serializer: Confluent Avro framing (magic 0 + schema id) or XML, not JSON.
        if rng.random() < 0.5:
            value = b"\x00" + rng.randrange(1, 2**31).to_bytes(4, "big") + bytes(rng.randrange(256) for _ in range(24))
            headers.append(("content-type", b"application/vnd.confluent.avro"))
        else:
            value = ("<event>" + "".join(f"<{k}>{v}</{k}>" for k, v in event.items() if not isinstance(v, (dict, list))) + "</event>").encode()
            headers.append(("content-type", b"application/xml"))
        return value, headers
    if kind == "wrong-charset":
        value, _ = _foreign_charset(event, rng)
        headers.append(("content-type", b"application/json; charset=utf-8"))
        return value, headers
    headers.append(("content-type", _JSON.encode()))
    return _common(kind, rng, event), headers


def _common(kind: str, rng: random.Random, event: dict) -> bytes:
    """The kinds whose bytes are the same over HTTP and Kafka."""
    if kind == "invalid-json":
        return _invalid_json(event, rng)
    if kind == "truncated-json":
        # Any proper prefix of a compact JSON object is invalid: its top-level brace is never closed.
        text = _dumps(event)
        return text[: rng.randrange(1, len(text))]
    if kind == "missing-field":
        if event:
            del event[rng.choice(sorted(event))]
        return _dumps(event)
    if kind == "extra-field":
        event[f"chaos_unexpected_{rng.randrange(1000)}"] = rng.choice(["surprise", 42, [1, 2], {"nested": True}])
        return _dumps(event)
    if kind == "wrong-type":
        return _dumps(_retype(event, rng))
    if kind == "future-schema":
        event[SCHEMA_VERSION_FIELD] = rng.randrange(100, 1000)
        return _dumps(event)
    if kind == "invalid-utf8":
        return _with_bytes_in_string(event, rng, rng.choice(_INVALID_UTF8))
    if kind == "bom":
        return UTF8_BOM + _dumps(event)
    if kind == "oversized":
        padding = "x" * (OVERSIZED_MIN_BYTES + rng.randrange(0, 512 * 1024))
        holder = next((v for v in event.values() if isinstance(v, dict)), event)
        holder["chaos_padding"] = padding
        return _dumps(event)
    raise AssertionError(kind)  # unreachable: _check_kind ran first


def _invalid_json(event: dict, rng: random.Random) -> bytes:
    text = _dumps(event).decode()
    if not event:
        return b"{,}"
    first_key = json.dumps(next(iter(event)))
    variants = [
        text[:-1] + ",}",                                  # trailing comma
        text.replace('"', "'"),                            # single quotes
        text.replace(first_key + ":", first_key[1:-1] + ":", 1),  # unquoted key
        text + "}",                                        # extra closing brace
        "/* chaos */" + text,                              # a comment
        text.replace(":", " ", 1),                         # missing colon
    ]
    return rng.choice(variants).encode()


def _retype(event: dict, rng: random.Random) -> dict:
    """Give one field a JSON type that no lax coercion turns back (numbers from strings would be coerced)."""
    if not event:
        return {"chaos": ["not", "an", "event"]}
    scalars = sorted(k for k, v in event.items() if not isinstance(v, (dict, list)))
    key = rng.choice(scalars or sorted(event))
    value = event[key]
    event[key] = "not-an-object" if isinstance(value, dict) else ({"unexpected": [1, 2]} if isinstance(value, list) else ["unexpected", {"type": "object"}])
    return event


def _foreign_charset(event: dict, rng: random.Random) -> tuple[bytes, str]:
    text, codec = rng.choice(_FOREIGN_TEXT)
    _set_string(event, text)
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode(codec), codec


def _with_bytes_in_string(event: dict, rng: random.Random, raw: bytes) -> bytes:
    _set_string(event, _MARKER)
    # json.dumps escapes the NULs of the marker; swap the escaped marker for the raw bytes after encoding.
    escaped = json.dumps(_MARKER)[1:-1].encode()
    return _dumps(event).replace(escaped, b"chaos " + raw + b" chaos", 1)


def _set_string(event: dict, text: str) -> None:
    """Put `text` into a string value: the first string field of a nested object, else the first top-level one."""
    for value in event.values():
        if isinstance(value, dict):
            for key, inner in value.items():
                if isinstance(inner, str):
                    value[key] = inner + " " + text
                    return
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = value + " " + text
            return
    event["chaos_text"] = text


def _check_kind(kind: str, allowed: tuple[str, ...]) -> None:
    if kind not in allowed:
        raise ValueError(f"unknown bad-payload kind {kind!r}; expected one of: {', '.join(allowed)}")


def _copy(event: Mapping[str, Any]) -> dict:
    return json.loads(json.dumps(dict(event)))


def _dumps(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
