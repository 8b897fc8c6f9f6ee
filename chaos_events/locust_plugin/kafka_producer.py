"""The Kafka user's shared producer: one confluent-kafka producer per process and the one greenlet that polls it.

May import gevent (never locust: the environment it fires events on is passed in), confluent_kafka lazily. Used by
users.py (KafkaUser); see its docstring for the design. The hot path, per message: `produce_many` enqueues with a
delivery callback that only appends `(info, err, msg)` to `_done`; `_drain`, on the hub, fires one Locust request
event per delivery (with the latency librdkafka measured) and acknowledges the successful ones to the ledger,
coalesced into ranges of consecutive sequence numbers per producer (one ledger call per range, not per message).

Invariant: nothing on the hub calls a blocking librdkafka function (no `flush()`, no `poll(timeout > 0)`): under
gevent they would freeze every greenlet of the process. `flush` runs in a native thread of gevent's threadpool.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from functools import partial
from typing import Any, Callable, Iterable, NamedTuple

import gevent

from chaos_events.observe import broker_kind

__all__ = ["PRODUCER_CONFIG", "KafkaDeliveryError", "KafkaMessage", "acknowledge", "acknowledge_range", "producer_config"]

log = logging.getLogger(__name__)

POLL_EVERY_S = 0.005
FLUSH_TIMEOUT_S = 5.0
BUFFER_RETRY_S = 0.05
QUEUE_FULL = "producer queue full (broker not keeping up)"
STUCK_AFTER_S = 10.0  # no delivery for this long (message.timeout.ms is 5 s): replace the producer
_FENCED: frozenset[int] = frozenset()  # filled on first use; needs confluent_kafka

PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "message.timeout.ms": 5000,  # an unreachable broker shows up as failures after 5 s, never as a hang
    "queue.buffering.max.messages": 20000,
    "socket.timeout.ms": 5000,
    "client.id": "chaos-events-locust",
}


# --- Producer settings from the environment (begin) ---------------------------------------------------------
# $CHAOS_KAFKA_PRODUCER_CONFIG, a JSON object of librdkafka settings, is merged over PRODUCER_CONFIG: a scenario can
# then run the Kafka user as the producers of the system under test are configured (e.g. {"acks": "1",
# "enable.idempotence": false}, to show what such a producer loses when a leader dies).
PRODUCER_CONFIG_ENV = "CHAOS_KAFKA_PRODUCER_CONFIG"


def producer_config() -> dict[str, Any]:
    """PRODUCER_CONFIG with $CHAOS_KAFKA_PRODUCER_CONFIG merged over it; ValueError saying what is wrong with it."""
    raw = os.environ.get(PRODUCER_CONFIG_ENV, "").strip()
    if not raw:
        return dict(PRODUCER_CONFIG)
    try:
        extra = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"invalid ${PRODUCER_CONFIG_ENV}: expected a JSON object of librdkafka settings; {exc}") from None
    if not isinstance(extra, dict) or not all(isinstance(v, (str, int, float, bool)) for v in extra.values()):
        raise ValueError(f"invalid ${PRODUCER_CONFIG_ENV}: expected a JSON object of librdkafka settings (string, number or "
                         f"boolean values); got {raw[:200]!r}")
    return {**PRODUCER_CONFIG, **extra}
# --- Producer settings from the environment (end) -----------------------------------------------------------


def _fenced_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError  # noqa: WPS433

    return frozenset(getattr(KafkaError, n) for n in ("PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "_FENCED") if hasattr(KafkaError, n))


class KafkaDeliveryError(Exception):
    """A message was not acknowledged by Kafka (delivery report error, full queue, or produce refused)."""


class KafkaMessage(NamedTuple):
    """One message of a batch (KafkaUser.produce_batch); `producer_id` and `seq` name it in the ledger when set."""

    value: bytes | str
    key: bytes | str | None = None
    headers: list | None = None
    producer_id: str | None = None
    seq: int | None = None


# -- ledger acks (chaos_events.load.acks is optional: another module of the harness provides it) -------------
_ack: Callable[[str, str, int], None] | None = None
_ack_range: Callable[[str, str, int, int], None] | None = None
_ack_loaded = False


def _load_acks() -> None:
    global _ack, _ack_range, _ack_loaded
    _ack_loaded = True
    try:
        from chaos_events.load import acks  # noqa: WPS433  (lazy: optional module)
    except ImportError:
        return
    _ack = acks.acknowledge
    _ack_range = getattr(acks, "acknowledge_range", None)


def acknowledge(channel: str, producer_id: str, seq: int) -> None:
    """Record an acknowledged write in the run's ledger, when the ledger module is present."""
    if not _ack_loaded:
        _load_acks()
    if _ack is not None:
        _ack(channel, producer_id, seq)


def acknowledge_range(channel: str, producer_id: str, start: int, end: int) -> None:
    """Record acknowledged writes start..end (inclusive) of one producer, as `acknowledge` does each."""
    if not _ack_loaded:
        _load_acks()
    if _ack_range is not None:
        _ack_range(channel, producer_id, start, end)
    elif _ack is not None:
        for seq in range(start, end + 1):
            _ack(channel, producer_id, seq)


def _ack_all(acked: dict[str, list[int]]) -> None:
    """Acknowledge each producer's sequence numbers as runs of consecutive ones (deliveries come partition by partition)."""
    for producer_id, seqs in acked.items():
        seqs.sort()
        start = end = seqs[0]
        for seq in seqs:
            if seq > end + 1:
                acknowledge_range("kafka", producer_id, start, end)
                start = seq
            end = seq
        acknowledge_range("kafka", producer_id, start, end)


def _delivered(append: Callable, info: tuple, err: Any, msg: Any) -> None:
    # Runs inside poll(0) on the hub, or inside flush() on a native thread: only record, never fire here.
    append((info, err, msg))


class _SharedProducer:
    """One confluent-kafka producer per process and the one greenlet that polls it.

    Invariant: nothing on the hub ever calls a blocking librdkafka function; callbacks only append to `_done`.
    """

    def __init__(self, environment, bootstrap: str):
        from confluent_kafka import Producer  # noqa: WPS433  (only Kafka runs pay for the import)

        global _FENCED
        _FENCED = _fenced_codes()
        self.environment = environment
        self.bootstrap = bootstrap
        self._done: deque = deque()     # deliveries: (info, err, msg), info as produce_many builds it
        self._control: deque = deque()  # client errors: ("log", text) and ("fatal", generation, text)
        self._names: dict[str, str] = {}
        self._last_error_log = 0.0
        self.producer = Producer({**producer_config(), "bootstrap.servers": bootstrap, "error_cb": self._on_error})
        self.generation = 0
        self._failing_since: float | None = None   # first failed delivery since the last success
        # Tansu workaround (see _tansu_stuck_workaround): ask the broker's kind now, while it normally answers.
        self._kind, self._kind_job = broker_kind.BrokerKind.UNKNOWN, gevent.get_hub().threadpool.spawn(broker_kind.detect, bootstrap)
        self._running = True
        self._greenlet = gevent.spawn(self._poll_loop)

    def _on_error(self, err) -> None:
        if err.fatal():
            self._control.append(("fatal", self.generation, str(err)))
            return
        # Client-level errors (broker down, ...) repeat every few seconds: log them at most every 10 s.
        now = time.monotonic()
        if now - self._last_error_log >= 10:
            self._last_error_log = now
            self._control.append(("log", str(err)))

    def _name(self, topic: str) -> str:
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = f"produce {topic}"
        return name

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: list | None, producer_id: str | None, seq: int | None,
                held=None) -> None:
        self.produce_many(topic, [(value, key, headers, producer_id, seq)], held)

    def produce_many(self, topic: str, messages: Iterable[tuple], held=None) -> None:
        """Enqueue (value, key, headers, producer_id, seq) tuples of bytes. Each message gets exactly one outcome: its
        delivery report later, or a failure event now (refused, or the queue still full after BUFFER_RETRY_S; then the
        rest of the batch fails too, one event each, instead of waiting again per message)."""
        name, generation, started = self._name(topic), self.generation, time.monotonic()
        produce, append = self.producer.produce, self._done.append
        full = False
        for value, key, headers, producer_id, seq in messages:
            if full:
                self._fire(name, len(value), (time.monotonic() - started) * 1000, KafkaDeliveryError(QUEUE_FULL), held)
                continue
            callback = partial(_delivered, append, (generation, name, len(value), producer_id, seq, started, held))
            try:
                produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
            except BufferError:
                full = not self._retry_full(topic, value, key, headers, callback)
                if full:
                    self._fire(name, len(value), (time.monotonic() - started) * 1000, KafkaDeliveryError(QUEUE_FULL), held)
                # The poll greenlet ran meanwhile and may have replaced the producer: use the current one from here.
                produce, generation = self.producer.produce, self.generation
            except Exception as exc:  # KafkaException, bad topic...: a failure, never a crash
                self._fire(name, len(value), (time.monotonic() - started) * 1000, KafkaDeliveryError(str(exc)), held)

    def _retry_full(self, topic: str, value: bytes, key, headers, callback) -> bool:
        """The queue is full: let the poll greenlet drain it and retry for up to BUFFER_RETRY_S; False if still full."""
        deadline = time.monotonic() + BUFFER_RETRY_S
        while time.monotonic() < deadline:
            self.producer.poll(0)
            gevent.sleep(0.01)
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
                return True
            except BufferError:
                continue
        return False

    # Hot path, once per delivery: locals instead of attribute lookups, one ledger call per run of sequence numbers.
    def _drain(self) -> None:
        while self._control:
            self._on_control(self._control.popleft())
        done = self._done
        if not done:
            return
        popleft, fire = done.popleft, self.environment.events.request.fire
        acked: dict[str, list[int]] = {}
        try:
            for _ in range(len(done)):
                info, err, msg = popleft()
                generation, name, length, producer_id, seq, started, held = info
                latency = msg.latency() if msg is not None else None
                latency_ms = latency * 1000 if latency is not None else (time.monotonic() - started) * 1000
                if err is not None:
                    self._failed(generation, name, length, latency_ms, err, held)
                    continue
                self._failing_since = None
                if held is not None:  # open model: timed from the arrival's intended start; its slot freed once reported
                    latency_ms += held.late_ms
                    held.settle()
                fire(request_type="KAFKA", name=name, response_time=latency_ms, response_length=length,
                     exception=None, context={})
                if seq is not None and producer_id is not None:
                    per_producer = acked.get(producer_id)
                    if per_producer is None:
                        acked[producer_id] = [seq]
                    else:
                        per_producer.append(seq)
        finally:
            if acked:
                _ack_all(acked)

    def _on_control(self, item: tuple) -> None:
        if item[0] == "log":
            log.warning("kafka client error (bootstrap %s): %s", self.bootstrap, item[1])
        elif item[1] == self.generation:  # "fatal", of the current producer
            self._replace_producer(item[2])

    def _failed(self, generation: int, name: str, length: int, latency_ms: float, err, held) -> None:
        self._fire(name, length, latency_ms, KafkaDeliveryError(err.str()), held)
        if generation != self.generation:
            return
        if err.fatal() or err.code() in _FENCED:
            self._replace_producer(err.str())
        elif self._tansu_stuck_workaround() and self._stuck(time.monotonic()):
            self._replace_producer(f"nothing delivered for {STUCK_AFTER_S:g} s (last error: {err.str()})")

    # --- Tansu workaround (begin) ---------------------------------------------------------------------------
    # Tansu keeps producer state in memory: after a restart it answers the idempotent producer with UnknownProducerId,
    # and librdkafka then times out every message for good, so a producer that delivered nothing for STUCK_AFTER_S
    # is replaced. Apache Kafka keeps producer state across restarts and leader changes, and librdkafka recovers on
    # its own, so against Kafka the producer is kept, as a real service keeps its client. The broker's kind is asked
    # off the hub (observe/broker_kind.py), again after a failed attempt; until it is known, the workaround stays on.
    def _tansu_stuck_workaround(self) -> bool:
        if self._kind is broker_kind.BrokerKind.UNKNOWN and self._kind_job.ready():
            if self._kind_job.successful():
                self._kind = self._kind_job.value
            if self._kind is broker_kind.BrokerKind.UNKNOWN:
                self._kind_job = gevent.get_hub().threadpool.spawn(broker_kind.detect, self.bootstrap)
        return self._kind is not broker_kind.BrokerKind.KAFKA
    # --- Tansu workaround (end) -----------------------------------------------------------------------------

    def _stuck(self, now: float) -> bool:
        if self._failing_since is None:
            self._failing_since = now
            return False
        if now - self._failing_since < STUCK_AFTER_S:
            return False
        self._failing_since = now  # at most one replacement per STUCK_AFTER_S while the failures go on
        return True

    def _replace_producer(self, reason: str) -> None:
        """A fatal error (e.g. the idempotent producer fenced after timeouts) ends a producer: start a new one.

        A real service restarts its client too. The old one is destroyed in a native thread, because
        destroying a librdkafka handle waits for its outstanding requests.
        """
        from confluent_kafka import Producer  # noqa: WPS433

        log.warning("kafka producer hit a fatal error, replacing it: %s", reason)
        self.generation += 1
        old, self.producer = self.producer, Producer({**producer_config(), "bootstrap.servers": self.bootstrap, "error_cb": self._on_error})
        gevent.get_hub().threadpool.spawn(_dispose, old)

    def _fire(self, name: str, length: int, response_time_ms: float, exception: Exception | None, held=None) -> None:
        if held is not None:  # open model: timed from the arrival's intended start; its slot is freed once reported
            response_time_ms += held.late_ms
            held.settle()
        self.environment.events.request.fire(
            request_type="KAFKA", name=name, response_time=response_time_ms,
            response_length=length, exception=exception, context={},
        )

    def _poll_loop(self) -> None:
        while self._running:
            try:
                self.producer.poll(0)
                self._drain()
            except Exception:
                log.exception("kafka poll loop")
            gevent.sleep(POLL_EVERY_S)

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> int:
        """Stop polling, flush in a native thread (bounded), report the last deliveries; returns undelivered count."""
        self._running = False
        self._greenlet.join(timeout=1)
        remaining = gevent.get_hub().threadpool.spawn(self.producer.flush, timeout).get()
        self._drain()
        if remaining:
            log.warning("%d Kafka messages not delivered within %.0f s of the test stop", remaining, timeout)
        return remaining


def _dispose(producer) -> None:
    """Runs in a native thread: fail what is still queued and let the handle go."""
    try:
        producer.purge()
        producer.flush(1)
    except Exception:
        pass
