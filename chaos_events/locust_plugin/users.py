"""Locust user base classes for event platforms: `KafkaUser` produces to Kafka without ever blocking the hub.

May import locust (with wiring.py, distributed.py and arrivals.py: the Locust adapters) and gevent. Must not import docker or
prometheus_client.

Why it is built this way (ARCHITECTURE section 9): under gevent, confluent-kafka's `poll(timeout)`, `flush()` and a
blocking `produce` freeze every greenlet of the process, so a broker fault would freeze the HTTP users too.
Here, one producer per process (kafka_producer.py) is shared by all Kafka users; `produce()` only enqueues (a full
queue fails fast), and `produce_batch()`/`produce_events()` enqueue several messages per task, as real producers do;
ONE greenlet per process calls `poll(0)` every few milliseconds; delivery callbacks only append to a queue that
this greenlet drains on the hub, where it fires Locust's request event (and acknowledges the write to the
ledger). At test stop, `flush` runs in a native thread of gevent's threadpool, with a bounded timeout.

Open model (arrivals.py): a message produced inside an arrival carries it (`held`) to its report, which adds how late
the arrival started and settles it, so the arrival's concurrency slot stays taken until the broker has answered.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any, Iterable

import gevent
from locust import User, events

from chaos_events.load.payloads import ledger_headers, new_producer_id, parse_event_id
from chaos_events.locust_plugin.arrivals import hold_for_delivery
from chaos_events.locust_plugin.kafka_producer import (  # noqa: F401  (re-exported: the users' and benches' names)
    PRODUCER_CONFIG, PRODUCER_CONFIG_ENV, KafkaDeliveryError, KafkaMessage, _SharedProducer, acknowledge,
    acknowledge_range, producer_config)
from chaos_events.observe import broker_kind

__all__ = ["KafkaUser", "KafkaDeliveryError", "KafkaMessage", "acknowledge", "check_kafka_options"]

TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


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


# -- the shared producer (kafka_producer.py) -------------------------------------------------------
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
    A batch (`produce_batch`, `produce_events`) is only fewer calls: each of its messages is reported and acknowledged
    on its own, failures included.
    Example:
        class Producer(KafkaUser):
            @task
            def send(self):
                self.produce_event({"id": f"{self.producer_id}.{self.next_seq()}", "type": "x.y", ...})

            @task
            def send_100(self):
                self.produce_events({"id": f"{self.producer_id}.{self.next_seq()}", "type": "x.y"} for _ in range(100))
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
        self._enqueue([_as_bytes(KafkaMessage(value, key, headers, producer_id, seq))], topic)

    def produce_event(self, event: dict, topic: str | None = None) -> None:
        """Produce an event dict as JSON, keyed by its id, with chaos-producer/chaos-seq headers for ledger ids."""
        self._enqueue([_event_message(event)], topic)

    def produce_batch(self, messages: Iterable[KafkaMessage | bytes | str], topic: str | None = None) -> int:
        """Enqueue several messages in one call, as a real producer's loop does (KafkaMessage items, or bare values).

        Every message still becomes its own request event (with the latency the broker measured) and, when it names
        a producer and seq, its own ledger entry. Returns how many messages were handed over."""
        return self._enqueue([_as_bytes(m if isinstance(m, KafkaMessage) else KafkaMessage(m)) for m in messages], topic)

    def produce_events(self, events: Iterable[dict], topic: str | None = None) -> int:
        """`produce_event` for each of several events, in one call (see produce_batch); returns how many."""
        return self._enqueue([_event_message(event) for event in events], topic)

    def backlog(self) -> int:
        """Messages this process's producer holds that have no delivery report yet (queued or in flight).

        A user that should not overrun the producer's queue (a real producer blocks when it is full; here a full queue
        fails messages fast) can wait while this is high, e.g. `wait_time` returning 0.01 s above a limit."""
        shared = _shared
        return len(shared.producer) if shared is not None and shared._running else 0

    def _enqueue(self, batch: list[tuple], topic: str | None) -> int:
        if not self.kafka_enabled or not batch:
            return 0
        topic = topic or self.topic
        held = hold_for_delivery("KAFKA", f"produce {topic}")  # open model (arrivals.py); None in the closed model
        if held is not None:
            for _ in range(len(batch) - 1):  # one hold per message: the arrival's slot is freed by the last report
                held.hold()
        _producer_for(self.environment, self.bootstrap).produce_many(topic, batch, held)
        return len(batch)


def _as_bytes(message: KafkaMessage) -> tuple:
    """(value, key, headers, producer_id, seq) with value and key as bytes, as the shared producer takes them."""
    value, key, headers, producer_id, seq = message
    return (value.encode() if isinstance(value, str) else value, key.encode() if isinstance(key, str) else key,
            headers, producer_id, seq)


def _event_message(event: dict) -> tuple:
    """An event dict as the shared producer's tuple: JSON value, its id as key, the ledger id in headers and fields."""
    event_id = str(event.get("id", ""))
    parsed = parse_event_id(event_id)
    value = _compact_json(event).encode()
    if parsed is None:
        return value, event_id.encode() or None, None, None, None
    producer_id, seq = parsed
    return value, event_id.encode(), ledger_headers(event_id), producer_id, seq
