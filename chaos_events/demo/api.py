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
This module holds the routes and the process; the Backend (producer, checks, store) is in api_backend.py and the
middlewares in middleware.py.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from confluent_kafka import KafkaException
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from chaos_events.demo import store
from chaos_events.demo.api_backend import Backend, Settings, kafka_error_text
from chaos_events.demo.middleware import InflightLimit, StrictJsonBody
from chaos_events.demo.schema import Event, LookupRequest
from chaos_events.load.payloads import ledger_headers

PRODUCE_TIMEOUT_S = 3.0


def create_app(settings: Settings) -> FastAPI:
    """The API behind its middlewares; its Backend starts and stops with the app's lifespan."""
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
    _add_ingest(app, backend)
    _add_reads(app, backend)
    _add_admin(app, backend)
    return InflightLimit(StrictJsonBody(app), settings.max_inflight, settings.acquire_timeout_s, backend.counters)


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"retry-after": "1"})


def _add_ingest(app: FastAPI, backend: Backend) -> None:
    """POST /api/events: 202 only after Kafka's delivery report; a quick 503 otherwise."""
    settings = backend.settings

    @app.post("/api/events", status_code=202)
    async def ingest(event: Event):
        if not backend.kafka_ok():
            # Fail fast while the health check sees Kafka down: callers get a quick 503, not a 3 s stall each.
            backend.counters.circuit_open += 1
            return _unavailable(f"kafka unavailable: {backend.kafka.error}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def delivered(err, _msg):
            loop.call_soon_threadsafe(_resolve, future, err)

        headers = ledger_headers(event.id)
        value = event.model_dump_json().encode()
        try:
            backend.producer.produce(settings.topic, key=event.id.encode(), value=value, headers=headers, on_delivery=delivered)
        except BufferError:
            backend.counters.kafka_failed += 1
            return _unavailable("kafka producer queue full")
        except KafkaException as exc:
            backend.counters.kafka_failed += 1
            return _unavailable(f"kafka produce failed: {kafka_error_text(exc)}")
        try:
            err = await asyncio.wait_for(future, PRODUCE_TIMEOUT_S)
        except (asyncio.TimeoutError, TimeoutError):
            backend.counters.kafka_timeout += 1
            return _unavailable(f"kafka delivery not confirmed within {PRODUCE_TIMEOUT_S:g} s")
        if err is not None:
            backend.counters.kafka_failed += 1
            return _unavailable(f"kafka delivery failed: {err.str()}")
        backend.counters.accepted += 1
        return {"id": event.id}


def _add_reads(app: FastAPI, backend: Backend) -> None:
    """Reads from the store: one event by id, the ledger's batch lookup, and the explorer."""

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


def _add_admin(app: FastAPI, backend: Backend) -> None:
    """/admin/stats (counts, dead letters, dependencies, the API's counters) and the truthful /health."""

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
