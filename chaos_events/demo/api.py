"""The demo API process: FastAPI ingest into Kafka, reads from the SQLite store, and a truthful /health.

Run as `python -m chaos_events.demo.api --port PORT --bootstrap HOST:PORT --store PATH` (uvicorn, one worker). Imports fastapi,
uvicorn, confluent_kafka and the standard library; never locust or gevent.

Contracts:
- `POST /api/events` answers 202 {"id"} only after Kafka's delivery report, 422 with field errors on bad input,
  and 503 within about 3 s when Kafka is unavailable (message.timeout.ms plus an asyncio timeout; immediately
  while the background check sees Kafka down): it never hangs.
- librdkafka is driven by one dedicated poll thread; delivery reports resolve asyncio futures on the event loop.
- `GET /health` reads state that background threads refresh every second (Kafka metadata with a short timeout,
  committed-offset lag) plus the consumer's heartbeat row, so it answers fast and turns 503 within ~3 s of the
  broker freezing.
- In-flight requests are capped (a semaphore with a short acquire timeout) and uvicorn limits connections, so an
  exhausted pool answers 503 instead of queueing without bound.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from chaos_events.load.payloads import parse_event_id

from chaos_events.demo import store
from chaos_events.demo.consumer import HEARTBEAT_NAME
from chaos_events.demo.schema import Event, LookupRequest

PRODUCE_TIMEOUT_S = 3.0
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


class InflightLimit:
    """Pure ASGI middleware: at most `limit` requests in flight; beyond that, wait `timeout_s`, then 503."""

    def __init__(self, app, limit: int, timeout_s: float, counters: Counters, exempt: tuple[str, ...] = ("/health",)):
        self.app, self.limit, self.timeout_s, self.counters, self.exempt = app, limit, timeout_s, counters, exempt
        self._sem: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        try:
            await asyncio.wait_for(self._sem.acquire(), self.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            self.counters.busy += 1
            body = json.dumps({"detail": f"busy: {self.limit} requests in flight"}).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._sem.release()


MAX_BODY_BYTES = 1 << 20  # 1 MiB: larger events are refused with 413 before they reach Kafka
BOM = b"\xef\xbb\xbf"


class StrictJsonBody:
    """Pure ASGI middleware for POST bodies: 413 above MAX_BODY_BYTES; 400 for a BOM or bytes that are not strict UTF-8.

    JSON on the wire must be UTF-8 without a BOM (RFC 8259 section 8.1). Python's json.loads(bytes) lets an encoded
    surrogate through, which later breaks serialisation with a 500; here it is refused up front with a clear 400.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _send_json(send, 413, {"detail": f"body larger than {MAX_BODY_BYTES} bytes"})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = _encoding_problem(body)
        if problem:
            await _send_json(send, 400, {"detail": problem})
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _encoding_problem(body: bytes) -> str | None:
    if body.startswith(BOM):
        return "body starts with a UTF-8 byte order mark; send UTF-8 JSON without a BOM"
    try:
        body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        return f"body is not valid UTF-8 at byte {exc.start}: {exc.reason}"
    return None


async def _send_json(send, status: int, payload: dict) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


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
                self.kafka.ok, self.kafka.error, self.kafka.latency_ms = False, _kafka_error_text(exc), None
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


def _kafka_error_text(exc: Exception) -> str:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return exc.args[0].str()
    return str(exc) or type(exc).__name__


def create_app(settings: Settings) -> FastAPI:
    backend = Backend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        backend.start()
        try:
            yield
        finally:
            backend.stop()

    app = FastAPI(title="demo event platform", lifespan=lifespan)
    app.state.backend = backend

    def unavailable(detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=503, headers={"retry-after": "1"})

    @app.post("/api/events", status_code=202)
    async def ingest(event: Event):
        if not backend.kafka_ok():
            # Fail fast while the health check sees Kafka down: callers get a quick 503, not a 3 s stall each.
            backend.counters.circuit_open += 1
            return unavailable(f"kafka unavailable: {backend.kafka.error}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def delivered(err, _msg):
            loop.call_soon_threadsafe(_resolve, future, err)

        headers = None
        parsed = parse_event_id(event.id)
        if parsed is not None:
            headers = [("chaos-producer", parsed[0].encode()), ("chaos-seq", str(parsed[1]).encode())]
        value = event.model_dump_json().encode()
        try:
            backend.producer.produce(settings.topic, key=event.id.encode(), value=value, headers=headers, on_delivery=delivered)
        except BufferError:
            backend.counters.kafka_failed += 1
            return unavailable("kafka producer queue full")
        except KafkaException as exc:
            backend.counters.kafka_failed += 1
            return unavailable(f"kafka produce failed: {_kafka_error_text(exc)}")
        try:
            err = await asyncio.wait_for(future, PRODUCE_TIMEOUT_S)
        except (asyncio.TimeoutError, TimeoutError):
            backend.counters.kafka_timeout += 1
            return unavailable(f"kafka delivery not confirmed within {PRODUCE_TIMEOUT_S:g} s")
        if err is not None:
            backend.counters.kafka_failed += 1
            return unavailable(f"kafka delivery failed: {err.str()}")
        backend.counters.accepted += 1
        return {"id": event.id}

    @app.get("/api/events/{event_id}")
    def read_event(event_id: str):
        row = backend.db().execute(f"SELECT {store.EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            return JSONResponse({"detail": f"event {event_id!r} not found"}, status_code=404)
        return store.row_to_event(row)

    @app.post("/api/events/lookup")
    def lookup(body: LookupRequest):
        found: list[str] = []
        ids = list(dict.fromkeys(body.ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.extend(r[0] for r in backend.db().execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk))
        return {"found": found}

    @app.get("/api/explorer")
    def explorer(type: str | None = None, source: str | None = None, limit: int = Query(50, ge=1, le=500)):
        where, args = [], []
        if type:
            where.append("type = ?")
            args.append(type)
        if source:
            where.append("source = ?")
            args.append(source)
        sql = f"SELECT {store.EVENT_COLUMNS} FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY rowid DESC LIMIT ?"
        rows = backend.db().execute(sql, (*args, limit)).fetchall()
        return {"count": len(rows), "events": [store.row_to_event(r) for r in rows]}

    @app.get("/admin/stats")
    def admin_stats():
        db = backend.db()
        by_type = dict(db.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        dlq = dict(db.execute("SELECT reason, count FROM dlq").fetchall())
        health = backend.health()
        return {
            "events": {"total": sum(by_type.values()), "by_type": by_type},
            "dlq": {"total": sum(dlq.values()), "by_reason": dlq},
            "consumer": health["dependencies"]["consumer"],
            "kafka": health["dependencies"]["kafka"],
            "api": vars(backend.counters),
        }

    @app.get("/health")
    def health():
        body = backend.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    return InflightLimit(StrictJsonBody(app), settings.max_inflight, settings.acquire_timeout_s, backend.counters)


def _resolve(future: asyncio.Future, err) -> None:
    if not future.done():
        future.set_result(err)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m chaos_events.demo.api", description="The demo platform's HTTP API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--topic", default="events")
    parser.add_argument("--dlq-topic", default="events.dlq")
    parser.add_argument("--group", default="events-store")
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--limit-concurrency", type=int, default=256, help="connections beyond this get 503 (uvicorn)")
    args = parser.parse_args(argv)
    app = create_app(Settings(args.bootstrap, args.store, args.topic, args.dlq_topic, args.group, args.max_inflight))
    config = uvicorn.Config(app, host=args.host, port=args.port, workers=1, log_level="warning", access_log=False,
                            limit_concurrency=args.limit_concurrency, timeout_graceful_shutdown=3, lifespan="on")
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
