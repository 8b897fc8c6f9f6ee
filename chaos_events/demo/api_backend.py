"""The demo API's backend: the Kafka producer with its poll thread, the background health checks, the store readers.

Part of the demo API process (api.py serves it over HTTP). Imports confluent_kafka and the standard library; never
locust or gevent. Contracts (see api.py): librdkafka is driven by one dedicated poll thread; `health()` reads state
that background threads refresh every second (Kafka metadata with a short timeout, committed-offset lag) plus the
consumer's heartbeat row, so it answers fast and turns "degraded" within ~3 s of the broker freezing.
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from chaos_events.demo import store
from chaos_events.demo.consumer import HEARTBEAT_NAME

MESSAGE_TIMEOUT_MS = 2500
KAFKA_CHECK_EVERY_S = 1.0
KAFKA_CHECK_TIMEOUT_S = 1.5
KAFKA_STALE_S = 3.0
CONSUMER_STALE_S = 3.0


@dataclass
class Settings:
    bootstrap: str
    store_path: str
    topic: str = "events"
    dlq_topic: str = "events.dlq"
    group: str = "events-store"
    max_inflight: int = 64
    acquire_timeout_s: float = 0.25


@dataclass
class KafkaState:
    ok: bool = False
    checked_at: float = 0.0
    error: str | None = "not checked yet"
    latency_ms: float | None = None
    committed_lag: int | None = None
    lag_checked_at: float = 0.0


@dataclass
class Counters:
    accepted: int = 0
    kafka_failed: int = 0
    kafka_timeout: int = 0
    circuit_open: int = 0
    busy: int = 0



class Backend:
    """The Kafka producer (with its poll thread), the background health checks and the store readers."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.kafka = KafkaState()
        self.counters = Counters()
        self._stop = threading.Event()
        self._local = threading.local()
        store.connect(settings.store_path, create=True).close()
        self.producer = Producer({
            "bootstrap.servers": settings.bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "socket.timeout.ms": 5000,
            "client.id": "demo-api",
        })
        self.offsets = Consumer({
            "bootstrap.servers": settings.bootstrap, "group.id": settings.group,
            "enable.auto.commit": False, "client.id": "demo-api-lag", "socket.timeout.ms": 5000,
        })
        self._threads = [
            threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True),
            threading.Thread(target=self._kafka_check_loop, name="kafka-check", daemon=True),
            threading.Thread(target=self._lag_loop, name="kafka-lag", daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=3)
        self.producer.flush(2)
        with contextlib.suppress(Exception):
            self.offsets.close()

    # -- background threads ----------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def _kafka_check_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                meta = self.producer.list_topics(self.settings.topic, timeout=KAFKA_CHECK_TIMEOUT_S)
                topic = meta.topics.get(self.settings.topic)
                if topic is None or topic.error is not None or not topic.partitions:
                    raise KafkaException(f"topic {self.settings.topic!r} unavailable: {getattr(topic, 'error', 'missing')}")
                if not meta.brokers:
                    raise KafkaException("no brokers in metadata")
                self.kafka.error, self.kafka.ok = None, True
                self.kafka.latency_ms = round((time.monotonic() - started) * 1000, 1)
            except Exception as exc:  # any failure means "not ok", reported truthfully
                self.kafka.ok, self.kafka.error, self.kafka.latency_ms = False, kafka_error_text(exc), None
            self.kafka.checked_at = time.monotonic()
            self._stop.wait(max(0.05, KAFKA_CHECK_EVERY_S - (time.monotonic() - started)))

    def _lag_loop(self) -> None:
        while not self._stop.is_set():
            if self.kafka_ok():
                with contextlib.suppress(Exception):
                    self.kafka.committed_lag = self._committed_lag()
                    self.kafka.lag_checked_at = time.monotonic()
            self._stop.wait(2.0)

    def _committed_lag(self) -> int:
        meta = self.offsets.list_topics(self.settings.topic, timeout=KAFKA_CHECK_TIMEOUT_S)
        partitions = [TopicPartition(self.settings.topic, p) for p in meta.topics[self.settings.topic].partitions]
        committed = self.offsets.committed(partitions, timeout=KAFKA_CHECK_TIMEOUT_S)
        lag = 0
        for tp in committed:
            low, high = self.offsets.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=KAFKA_CHECK_TIMEOUT_S)
            lag += max(0, high - (tp.offset if tp.offset >= 0 else low))
        return lag

    # -- state -------------------------------------------------------------------------------------
    def kafka_ok(self) -> bool:
        return self.kafka.ok and time.monotonic() - self.kafka.checked_at <= KAFKA_STALE_S

    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = store.connect(self.settings.store_path)
        return conn

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        kafka = {"ok": self.kafka_ok(), "error": self.kafka.error, "latency_ms": self.kafka.latency_ms,
                 "checked_s_ago": round(now - self.kafka.checked_at, 2) if self.kafka.checked_at else None}
        try:
            self.db().execute("SELECT 1").fetchone()
            beat = store.heartbeat(self.db(), HEARTBEAT_NAME)
            store_dep = {"ok": True, "path": self.settings.store_path}
        except sqlite3.Error as exc:
            beat, store_dep = None, {"ok": False, "error": str(exc), "path": self.settings.store_path}
        if beat is None:
            consumer = {"ok": False, "lag": None, "last_seen_s": None, "error": "no heartbeat yet"}
        else:
            last_seen = round(max(0.0, time.time() - beat["ts"]), 2)
            lag_fresh = self.kafka.committed_lag is not None and now - self.kafka.lag_checked_at <= 10
            # Alive and holding partitions: a consumer that lost its group membership consumes nothing.
            consumer = {"ok": last_seen <= CONSUMER_STALE_S and bool(beat["assigned"]), "lag": self.kafka.committed_lag if lag_fresh else beat["lag"],
                        "lag_source": "committed" if lag_fresh else "consumer", "last_seen_s": last_seen,
                        "assigned_partitions": beat["assigned"], "consumed": beat["consumed"]}
        deps = {"kafka": kafka, "store": store_dep, "consumer": consumer}
        status = "ok" if all(d["ok"] for d in deps.values()) else "degraded"
        return {"status": status, "dependencies": deps}


def kafka_error_text(exc: Exception) -> str:
    """librdkafka's readable text of a KafkaException, else the exception's own."""
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return exc.args[0].str()
    return str(exc) or type(exc).__name__

