"""The demo API's ASGI middlewares: a cap on requests in flight, and strict UTF-8 JSON bodies of bounded size.

Part of the demo API process (api.py wraps its app in them). Standard library only (the counters' type from
api_backend.py); never locust or gevent.
"""
from __future__ import annotations

import asyncio
import json

from chaos_events.demo.api_backend import Counters


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

