"""Produces poison messages to a Kafka topic at a steady rate, without ever blocking the gevent hub.

Imports confluent_kafka (lazily, when a producer starts) and the standard library; never locust, docker,
prometheus_client or gevent. The loop runs in a `threading.Thread`: a real thread normally, a greenlet under
gevent's monkey-patching. Either way it calls only `produce()` (which raises BufferError instead of blocking
when the local queue is full) and `poll(0)`, and sleeps with `time.sleep`, which the patching makes
cooperative. It never calls `flush()` or a blocking `poll(timeout)`: those freeze every greenlet.

Active producers live in a registry keyed by the fault's occurrence id, since a fault's state must stay JSON.

Example:
    start_poison("f1", "127.0.0.1:9092", "events", rate_per_s=20, kinds=["invalid-json"])
    ...
    stop_poison("f1")  # {"sent": 40, "delivered": 40, "failed": 0, "queue_full": 0, "by_kind": {...}}
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Iterable

from chaos_events.load.corrupt import POISON_KINDS, make_poison_message
from chaos_events.errors import InjectionError

DRAIN_TIMEOUT_S = 5.0


def _base_event(rng: random.Random, n: int) -> dict:
    return {
        "id": f"chaos-poison-{rng.getrandbits(32):08x}-{n}",
        "type": "chaos.poison",
        "source": "chaos-events",
        "timestamp": "2026-01-01T00:00:00.000+00:00",
        "payload": {"note": "a poison message from the chaos harness", "n": n},
    }


TAG_HEADER = "chaos-poison-tag"


class PoisonProducer:
    """Produces `rate_per_s` poison messages per second, cycling through `kinds`.

    Invariant: sent == delivered + failed + in flight; `counts()` is safe to call from any greenlet or thread.
    Example: p = PoisonProducer("127.0.0.1:9092", "events", 10, ["truncated-json"]); p.start(); ...; p.stop()
    """

    def __init__(self, bootstrap: str, topic: str, rate_per_s: float, kinds: Iterable[str] | None = None,
                 seed: int | None = None, config: dict | None = None, tag: str | None = None):
        self.kinds = tuple(kinds or POISON_KINDS)
        self.tag = tag  # sent as header `chaos-poison-tag`, to count these messages wherever the platform parks them
        unknown = [k for k in self.kinds if k not in POISON_KINDS]
        if unknown:
            raise ValueError(f"unknown poison kind {unknown[0]!r}; expected one of: {', '.join(POISON_KINDS)}")
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be above 0; got {rate_per_s}")
        self.bootstrap, self.topic, self.rate_per_s = bootstrap, topic, float(rate_per_s)
        self._rng = random.Random(seed)
        self._config = {
            "bootstrap.servers": bootstrap,
            "client.id": "chaos-events-poison",
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 10000,
            "socket.timeout.ms": 5000,
            **(config or {}),
        }
        self._counts: Counter = Counter()
        self._by_kind: dict[str, Counter] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer = None
        self._drain_timeout_s = DRAIN_TIMEOUT_S

    def start(self) -> None:
        try:
            from confluent_kafka import KafkaException, Producer
        except ImportError as exc:
            raise InjectionError("poison_messages needs confluent-kafka (pip install confluent-kafka)") from exc
        try:
            self._producer = Producer(self._config)
        except KafkaException as exc:
            raise InjectionError(f"poison_messages could not create a Kafka producer for {self.bootstrap}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="chaos-poison", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> dict:
        """Stop producing, wait up to `drain_timeout_s` for delivery reports (by polling, never flushing), return counts."""
        self._drain_timeout_s = drain_timeout_s
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout_s + 2.0)
            self._thread = None
        producer, self._producer = self._producer, None
        if producer is not None:
            # Whatever is still queued after the drain is dropped, not waited for; purge reports it as failed.
            try:
                producer.purge(in_queue=True, in_flight=True, blocking=False)
                producer.poll(0)
            except Exception:
                pass
        return self.counts()

    def counts(self) -> dict:
        with self._lock:
            return {"sent": self._counts["sent"], "delivered": self._counts["delivered"], "failed": self._counts["failed"],
                    "queue_full": self._counts["queue_full"],
                    "by_kind": {k: dict(c) for k, c in sorted(self._by_kind.items())}}

    # -- loop -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        producer = self._producer  # a local reference: stop() may drop the attribute after a join timeout
        interval = 1.0 / self.rate_per_s
        next_at = time.monotonic()
        n = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            if next_at < now - 1.0:
                next_at = now  # far behind: resume the rate rather than burst
            while next_at <= now and not self._stopping.is_set():
                self._produce_one(producer, n)
                n += 1
                next_at += interval
            producer.poll(0)
            time.sleep(min(0.05, max(0.0, next_at - time.monotonic())))
        deadline = time.monotonic() + self._drain_timeout_s
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0)
            time.sleep(0.02)
        producer.poll(0)

    def _produce_one(self, producer, n: int) -> None:
        kind = self.kinds[n % len(self.kinds)]
        value, headers = make_poison_message(kind, self._rng, _base_event(self._rng, n))
        if self.tag:
            headers.append((TAG_HEADER, self.tag.encode()))

        def delivered(err, _msg, kind=kind):
            with self._lock:
                outcome = "failed" if err is not None else "delivered"
                self._counts[outcome] += 1
                self._by_kind.setdefault(kind, Counter())[outcome] += 1

        try:
            producer.produce(self.topic, value=value, key=f"chaos-poison-{n}".encode(), headers=headers, on_delivery=delivered)
        except BufferError:
            with self._lock:
                self._counts["queue_full"] += 1
            return
        except Exception:  # KafkaException for a refused message: counted, the loop goes on
            with self._lock:
                self._counts["failed"] += 1
                self._by_kind.setdefault(kind, Counter())["failed"] += 1
            return
        with self._lock:
            self._counts["sent"] += 1
            self._by_kind.setdefault(kind, Counter())["sent"] += 1


# -- registry by fault occurrence id -------------------------------------------------------------------------
_ACTIVE: dict[str, PoisonProducer] = {}
_FINISHED: dict[str, dict] = {}


def start_poison(fault_id: str, bootstrap: str, topic: str, rate_per_s: float, kinds: Iterable[str] | None = None,
                 seed: int | None = None, tag: str | None = None) -> PoisonProducer:
    """Start (or restart) the poison producer of one fault occurrence."""
    stop_poison(fault_id)
    producer = PoisonProducer(bootstrap, topic, rate_per_s, kinds, seed, tag=tag)
    producer.start()
    _ACTIVE[fault_id] = producer
    return producer


def stop_poison(fault_id: str) -> dict | None:
    """Stop it; returns its final counts, or None when this process never started it. Idempotent."""
    producer = _ACTIVE.pop(fault_id, None)
    if producer is None:
        return _FINISHED.get(fault_id)
    _FINISHED[fault_id] = producer.stop()
    return _FINISHED[fault_id]


def poison_counts(fault_id: str) -> dict | None:
    """Live counts of an active producer, final counts of a stopped one, None when unknown here."""
    producer = _ACTIVE.get(fault_id)
    return producer.counts() if producer is not None else _FINISHED.get(fault_id)
