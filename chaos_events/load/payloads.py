"""Realistic events for the load: typed, sourced, timestamped, with nested payloads and ledger-friendly ids.

Pure module: standard library only (no gevent, locust, docker, prometheus_client, no I/O). The clock is an
argument, so a seeded generator with a fixed clock yields the same events every time.

An event id is f"{producer_id}.{seq}": the ledger (chaos_events.load.acks) counts acknowledged writes per producer and
sequence number, and the demo API turns such ids into the Kafka headers `chaos-producer` and `chaos-seq`.
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = ["EVENT_TYPES", "SOURCES", "EventGenerator", "HEADER_PRODUCER", "HEADER_SEQ", "event_id", "ledger_headers",
           "parse_event_id", "new_producer_id"]

EVENT_TYPES: tuple[str, ...] = (
    "order.created",
    "order.shipped",
    "payment.captured",
    "user.signed_up",
    "page.viewed",
    "sensor.reading",
)
SOURCES: tuple[str, ...] = ("web", "mobile-ios", "mobile-android", "pos", "iot-gateway", "partner-api")

# Weights make the mix look like real traffic: many page views and readings, fewer orders and sign-ups.
_TYPE_WEIGHTS = (12, 4, 8, 2, 40, 34)
_SKUS = ("SKU-1001", "SKU-1002", "SKU-2001", "SKU-3005", "SKU-4410", "SKU-7777")
_CURRENCIES = ("EUR", "USD", "GBP")
_COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES")
_PAGES = ("/", "/search", "/product", "/cart", "/checkout", "/account")
_UNITS = {"temperature": "celsius", "humidity": "percent", "pressure": "hpa"}


def event_id(producer_id: str, seq: int) -> str:
    """The id a write carries end to end: 'producer.seq' (the one definition; the ledger and its audits import it)."""
    return f"{producer_id}.{seq}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """(producer_id, seq) when `value` has the ledger form `PRODUCER.SEQ`, else None: 'w1-u3.17' -> ('w1-u3', 17);
    the producer may contain dots (the last one splits)."""
    producer, sep, seq = value.rpartition(".")
    if not sep or not producer or not seq.isdigit():
        return None
    return producer, int(seq)


# The Kafka headers that carry an event id's two parts, so a topic can be audited without parsing message bodies.
HEADER_PRODUCER = "chaos-producer"
HEADER_SEQ = "chaos-seq"


def ledger_headers(value: str) -> list[tuple[str, bytes]] | None:
    """The Kafka headers of an event id in the ledger form (None for any other id): what the audit reads back."""
    parsed = parse_event_id(value)
    if parsed is None:
        return None
    return [(HEADER_PRODUCER, parsed[0].encode()), (HEADER_SEQ, str(parsed[1]).encode())]


def new_producer_id(prefix: str, rng: random.Random | None = None) -> str:
    """A producer id unique enough for one run (`prefix-8hex`); it never contains a dot."""
    rng = rng or random.Random()
    return f"{prefix.replace('.', '-')}-{rng.getrandbits(32):08x}"


class EventGenerator:
    """Produces events for one producer; ids are consecutive from `start_seq`.

    Invariant: every event has keys id, type, source, timestamp (ISO 8601, UTC), schema_version and a nested
    payload whose shape depends on the type; the same (producer_id, seed, clock) gives the same sequence.
    Example:
        gen = EventGenerator("api-0001", seed=7, clock=lambda: 1_700_000_000.0)
        gen.next()["id"] == "api-0001.1"
    """

    def __init__(self, producer_id: str, seed: int | None = None, clock: Callable[[], float] = time.time, start_seq: int = 1):
        if not producer_id or "." in producer_id:
            raise ValueError(f"producer_id must be non-empty and contain no '.'; got {producer_id!r}")
        self.producer_id = producer_id
        self.seq = start_seq - 1
        self._rng = random.Random(seed)
        self._clock = clock

    def next(self) -> dict[str, Any]:
        """The next event (a fresh dict, ready for JSON)."""
        self.seq += 1
        rng = self._rng
        etype = rng.choices(EVENT_TYPES, weights=_TYPE_WEIGHTS)[0]
        return {
            "id": event_id(self.producer_id, self.seq),
            "type": etype,
            "source": rng.choice(SOURCES),
            "timestamp": datetime.fromtimestamp(self._clock(), tz=timezone.utc).isoformat(timespec="milliseconds"),
            "schema_version": 1,
            "payload": _PAYLOADS[etype](rng),
        }

    __next__ = next

    def __iter__(self):
        return self


def _customer(rng: random.Random) -> dict[str, Any]:
    return {"id": f"C{rng.randrange(1, 50_000):06d}", "country": rng.choice(_COUNTRIES), "tier": rng.choice(("free", "plus", "pro"))}


def _order_created(rng: random.Random) -> dict[str, Any]:
    items = [
        {"sku": rng.choice(_SKUS), "quantity": rng.randint(1, 4), "unit_price": round(rng.uniform(2, 250), 2)}
        for _ in range(rng.randint(1, 4))
    ]
    total = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
    return {
        "order_id": f"O{rng.randrange(10**9):09d}",
        "customer": _customer(rng),
        "items": items,
        "total": {"amount": total, "currency": rng.choice(_CURRENCIES)},
    }


def _order_shipped(rng: random.Random) -> dict[str, Any]:
    return {
        "order_id": f"O{rng.randrange(10**9):09d}",
        "carrier": rng.choice(("dhl", "ups", "fedex", "postnl")),
        "tracking": {"number": f"TRK{rng.randrange(10**10):010d}", "eta_days": rng.randint(1, 7)},
    }


def _payment_captured(rng: random.Random) -> dict[str, Any]:
    return {
        "payment_id": f"P{rng.randrange(10**9):09d}",
        "amount": {"value": round(rng.uniform(1, 900), 2), "currency": rng.choice(_CURRENCIES)},
        "method": {"kind": rng.choice(("card", "sepa", "paypal")), "last4": f"{rng.randrange(10_000):04d}"},
        "risk": {"score": round(rng.random(), 3), "flags": rng.sample(("velocity", "geo", "new_device"), rng.randint(0, 2))},
    }


def _user_signed_up(rng: random.Random) -> dict[str, Any]:
    return {
        "user": _customer(rng),
        "referrer": rng.choice((None, "newsletter", "ads", "friend")),
        "consents": {"marketing": rng.random() < 0.4, "analytics": rng.random() < 0.7},
    }


def _page_viewed(rng: random.Random) -> dict[str, Any]:
    return {
        "session_id": f"S{rng.getrandbits(48):012x}",
        "page": {"path": rng.choice(_PAGES), "load_ms": rng.randint(40, 2500)},
        "device": {"os": rng.choice(("ios", "android", "windows", "macos", "linux")), "viewport": [rng.choice((375, 768, 1280, 1920)), rng.choice((667, 1024, 800, 1080))]},
    }


def _sensor_reading(rng: random.Random) -> dict[str, Any]:
    metric = rng.choice(tuple(_UNITS))
    return {
        "device_id": f"dev-{rng.randrange(1, 2000):04d}",
        "metric": metric,
        "reading": {"value": round(rng.gauss(20, 8), 2), "unit": _UNITS[metric]},
        "location": {"lat": round(rng.uniform(-60, 70), 4), "lon": round(rng.uniform(-180, 180), 4)},
        "battery_pct": rng.randint(1, 100),
    }


_PAYLOADS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "order.created": _order_created,
    "order.shipped": _order_shipped,
    "payment.captured": _payment_captured,
    "user.signed_up": _user_signed_up,
    "page.viewed": _page_viewed,
    "sensor.reading": _sensor_reading,
}
