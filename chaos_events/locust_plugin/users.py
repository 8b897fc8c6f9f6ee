"""Locust user base classes for event platforms: `KafkaUser` produces to Kafka without ever blocking the hub.

May import locust (with wiring.py, distributed.py and arrivals.py: the Locust adapters) and gevent. Must not import docker or
prometheus_client.

Why it is built this way (ARCHITECTURE section 9): under gevent, confluent-kafka's `poll(timeout)`, `flush()` and a
blocking `produce` freeze every greenlet of the process, so a broker fault would freeze the HTTP users too.
Here, one producer per process is shared by all Kafka users; `produce()` only enqueues (a full queue fails fast);
ONE greenlet per process calls `poll(0)` every few milliseconds; delivery callbacks only append to a queue that
this greenlet drains on the hub, where it fires Locust's request event (and acknowledges the write to the
ledger). At test stop, `flush` runs in a native thread of gevent's threadpool, with a bounded timeout.

Open model (arrivals.py): a message produced inside an arrival carries it (`held`) to its report, which adds how late
the arrival started and settles it, so the arrival's concurrency slot stays taken until the broker has answered.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections import deque
from functools import partial
from typing import Any, Callable

import gevent
from locust import User, events

from chaos_events.load.payloads import new_producer_id, parse_event_id
from chaos_events.locust_plugin.arrivals import hold_for_delivery
from chaos_events.observe import broker_kind

__all__ = ["KafkaUser", "KafkaDeliveryError", "acknowledge", "check_kafka_options"]

log = logging.getLogger(__name__)

POLL_EVERY_S = 0.005
FLUSH_TIMEOUT_S = 5.0
BUFFER_RETRY_S = 0.05
_FENCED: frozenset[int] = frozenset()  # filled on first use; needs confluent_kafka
TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

STUCK_AFTER_S = 10.0  # no delivery for this long (message.timeout.ms is 5 s): replace the producer

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


# -- ledger acks (chaos_events.load.acks is optional: another module of the harness provides it) -------------
_ack: Callable[[str, str, int], None] | None = None
_ack_loaded = False


def acknowledge(channel: str, producer_id: str, seq: int) -> None:
    """Record an acknowledged write in the run's ledger, when the ledger module is present."""
    global _ack, _ack_loaded
    if not _ack_loaded:
        _ack_loaded = True
        try:
            from chaos_events.load import acks  # noqa: WPS433  (lazy: optional module)

            _ack = acks.acknowledge
        except ImportError:
            _ack = None
    if _ack is not None:
        _ack(channel, producer_id, seq)


# -- options -----------------------------------------------------------------------------------------
def check_kafka_options(bootstrap: Any, topic: Any) -> list[str]:
    """Messages for invalid --kafka-bootstrap / --kafka-topic values; empty when both are fine."""
    problems = []
    entries = [e.strip() for e in str(bootstrap or "").split(",")]
    bad = [e for e in entries if not re.fullmatch(r"[^\s:,]+:\d{1,5}", e) or not 0 < int(e.rsplit(":", 1)[1]) < 65536]
    if not bootstrap or bad:
        problems.append(f"invalid option --kafka-bootstrap: expected HOST:PORT[,HOST:PORT...], got {str(bootstrap or '')!r}")
    if not topic or not TOPIC_RE.match(str(topic)):
        problems.append(f"invalid option --kafka-topic: expected a Kafka topic name (1-249 characters of A-Z a-z 0-9 . _ -), got {str(topic or '')!r}")
    return problems


def _kafka_options(environment) -> tuple[str, str]:
    opts = getattr(environment, "parsed_options", None)
    return getattr(opts, "kafka_bootstrap", "127.0.0.1:19092"), getattr(opts, "kafka_topic", "events")


_options_problems: list[str] = []
# json.dumps with separators builds a new JSONEncoder per call; one shared encoder gives the same bytes, cheaper.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


@events.test_start.add_listener
def _check_options_on_start(environment, **_kwargs):
    """Bad Kafka options end the run with exit code 2 and one clear line, not a traceback per user."""
    _options_problems.clear()
    if not any(isinstance(cls, type) and issubclass(cls, KafkaUser) for cls in environment.user_classes or []):
        return
    _options_problems.extend(check_kafka_options(*_kafka_options(environment)))
    try:  # --- producer settings from the environment, and the broker kind override (see their blocks) ---
        producer_config()
        broker_kind.configured()
    except ValueError as exc:
        _options_problems.append(str(exc))
    if not _options_problems:
        return
    for problem in _options_problems:
        print(f"error: {problem}", file=sys.stderr, flush=True)
    environment.process_exit_code = 2
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)


# -- the shared producer -----------------------------------------------------------------------------
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
        self._done: deque = deque()
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
            self._done.append(("fatal", self.generation, str(err)))
            return
        # Client-level errors (broker down, ...) repeat every few seconds: log them at most every 10 s.
        now = time.monotonic()
        if now - self._last_error_log >= 10:
            self._last_error_log = now
            self._done.append(("log", str(err)))

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: list | None, producer_id: str | None, seq: int | None,
                held=None) -> None:
        started = time.monotonic()
        callback = partial(self._delivered, self.generation, topic, len(value), producer_id, seq, started, held)
        deadline = started + BUFFER_RETRY_S
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    self._fire(topic, len(value), (time.monotonic() - started) * 1000, KafkaDeliveryError("producer queue full (broker not keeping up)"), held)
                    return
                self.producer.poll(0)
                gevent.sleep(0.01)
            except Exception as exc:  # KafkaException, bad topic...: a failure, never a crash
                self._fire(topic, len(value), (time.monotonic() - started) * 1000, KafkaDeliveryError(str(exc)), held)
                return

    def _delivered(self, generation, topic, length, producer_id, seq, started, held, err, msg) -> None:
        # Runs inside poll(0) on the hub, or inside flush() on a native thread: only record, never fire here.
        latency = msg.latency() if msg is not None else None
        latency_ms = latency * 1000 if latency is not None else (time.monotonic() - started) * 1000
        self._done.append(("delivery", generation, topic, length, producer_id, seq, latency_ms, err, held))

    def _drain(self) -> None:
        while self._done:
            item = self._done.popleft()
            if item[0] == "log":
                log.warning("kafka client error (bootstrap %s): %s", self.bootstrap, item[1])
                continue
            if item[0] == "fatal":
                if item[1] == self.generation:
                    self._replace_producer(item[2])
                continue
            _, generation, topic, length, producer_id, seq, latency_ms, err, held = item
            if err is None:
                self._failing_since = None
                self._fire(topic, length, latency_ms, None, held)
                if producer_id is not None and seq is not None:
                    acknowledge("kafka", producer_id, seq)
            else:
                self._fire(topic, length, latency_ms, KafkaDeliveryError(err.str()), held)
                if generation != self.generation:
                    continue
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

    def _fire(self, topic: str, length: int, response_time_ms: float, exception: Exception | None, held=None) -> None:
        if held is not None:  # open model: timed from the arrival's intended start; its slot is freed once reported
            response_time_ms += held.late_ms
            held.settle()
        self.environment.events.request.fire(
            request_type="KAFKA", name=f"produce {topic}", response_time=response_time_ms,
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


_shared: _SharedProducer | None = None


def _producer_for(environment, bootstrap: str) -> _SharedProducer:
    global _shared
    if _shared is None or _shared.bootstrap != bootstrap or not _shared._running:
        _shared = _SharedProducer(environment, bootstrap)
    return _shared


@events.test_stop.add_listener
def _flush_on_stop(**_kwargs):
    global _shared
    shared, _shared = _shared, None
    if shared is not None:
        shared.close()


class KafkaUser(User):
    """Abstract base of users that produce to Kafka; bootstrap and topic come from --kafka-bootstrap/--kafka-topic.

    Invariant: `produce*` return at once; each message becomes exactly one Locust request event (type KAFKA,
    name "produce TOPIC") when its delivery report arrives, and an acknowledged event id goes to the ledger.
    Example:
        class Producer(KafkaUser):
            @task
            def send(self):
                self.produce_event({"id": f"{self.producer_id}.{self.next_seq()}", "type": "x.y", ...})
    """

    abstract = True
    producer_prefix = "kafka"

    def __init__(self, environment):
        super().__init__(environment)
        self.bootstrap, self.topic = _kafka_options(environment)
        self.producer_id = new_producer_id(self.producer_prefix)
        self.seq = 0
        # With bad options (or bad settings in the environment, see _check_options_on_start) the run is quitting
        # (exit 2); users stay idle instead of raising one traceback each.
        self.kafka_enabled = not check_kafka_options(self.bootstrap, self.topic) and not _options_problems

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def produce(self, value: bytes | str, key: bytes | str | None = None, headers: list | None = None,
                topic: str | None = None, producer_id: str | None = None, seq: int | None = None) -> None:
        """Enqueue one message; the outcome arrives later as a Locust request event."""
        if not self.kafka_enabled:
            return
        if isinstance(value, str):
            value = value.encode()
        if isinstance(key, str):
            key = key.encode()
        topic = topic or self.topic
        held = hold_for_delivery("KAFKA", f"produce {topic}")  # open model (arrivals.py); None in the closed model
        _producer_for(self.environment, self.bootstrap).produce(topic, value, key, headers, producer_id, seq, held)

    def produce_event(self, event: dict, topic: str | None = None) -> None:
        """Produce an event dict as JSON, keyed by its id, with chaos-producer/chaos-seq headers for ledger ids."""
        event_id = str(event.get("id", ""))
        parsed = parse_event_id(event_id)
        headers = [("chaos-producer", parsed[0].encode()), ("chaos-seq", str(parsed[1]).encode())] if parsed else None
        value = _compact_json(event).encode()
        self.produce(value, key=event_id or None, headers=headers, topic=topic,
                     producer_id=parsed[0] if parsed else None, seq=parsed[1] if parsed else None)
