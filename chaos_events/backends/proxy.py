"""The harness's TCP fault proxy (Toxiproxy-like): named routes LISTEN -> UPSTREAM, toxics applied and removed live.

Why: the kernel here has no netem, so network faults need a user-space path. Each route is a gevent StreamServer;
each connection is five greenlets (a reader and a writer per direction, plus a supervisor for timed toxics). Toxic
logic lives in `backends/toxics.py`, one small class per toxic type; this module does the waiting and the sockets.
Imports gevent and requests; must not import locust, docker or prometheus_client.

Three ways to use it:
- in-process: `ProxyServer(["api=127.0.0.1:8000=127.0.0.1:8001"], control="127.0.0.1:8474").start()` ... `.stop()`.
  In a gevent-patched process (Locust) it runs as greenlets of the current hub and never blocks it; in a plain
  process (tests, a supervisor) it runs its own hub in one daemon thread.
- as a process: `python -m chaos_events.backends.proxy --control 127.0.0.1:8474 --route api=127.0.0.1:8000=127.0.0.1:8001`
  prints `proxy ready` once every listener is bound and exits 0 on SIGTERM or SIGINT; bad arguments exit 2.
- the client: `ProxyClient("http://127.0.0.1:8474").add_toxic("api", "slow", "latency", {"latency_ms": 200})`.

Control API (JSON): GET /proxies, GET /proxies/NAME, GET /proxies/NAME/toxics, POST /proxies/NAME/toxics
{"name","type","stream","toxicity","attributes"}, GET|DELETE /proxies/NAME/toxics/TOXIC, POST /reset (removes every
toxic). Errors are {"error": text, "status": code, "kind": ...}; a bad toxic body is a 400 listing every problem.
"""
from __future__ import annotations

if __name__ == "__main__":  # run as a process: patch before anything below imports socket, ssl or threading
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

import gevent
import gevent.event
import gevent.queue
import gevent.socket
import requests
from gevent import monkey as _monkey
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer

from chaos_events.errors import ChaosError, InjectionError
from chaos_events.backends.toxics import Toxic, parse_toxic

__all__ = ["DEFAULT_CONTROL_URL", "ProxyClient", "ProxyError", "ProxyServer", "RouteSpec", "UnknownRouteError",
           "default_control_url", "main", "parse_address", "parse_route"]

DEFAULT_CONTROL_URL = "http://127.0.0.1:8474"
CHUNK_BYTES = 65536
# Chunks in flight per direction: enough to keep a latency toxic pipelined, bounded so a stalled peer pushes back.
QUEUE_CHUNKS = 64
# Bandwidth pacing granularity: one piece per 10 ms keeps the rate within a few percent even for short transfers.
PACING_S = 0.01


class ProxyError(ChaosError):
    """The proxy cannot start or serve as asked (bad route, port taken)."""


class UnknownRouteError(InjectionError):
    """The control API has no route of that name."""


def default_control_url() -> str:
    """$CHAOS_PROXY_CONTROL, else http://127.0.0.1:8474."""
    return os.environ.get("CHAOS_PROXY_CONTROL") or DEFAULT_CONTROL_URL


# -- routes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteSpec:
    """A named route. Example: RouteSpec("api", ("127.0.0.1", 8000), ("127.0.0.1", 8001)); port 0 listens on a free port."""

    name: str
    listen: tuple[str, int]
    upstream: tuple[str, int]


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """'127.0.0.1:8000' -> ('127.0.0.1', 8000); raises ValueError naming `what` and the expected form."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT with a port from 0 to 65535; got {text!r}")
    return host.strip("[]"), int(port)


def parse_route(text: str) -> RouteSpec:
    """'api=127.0.0.1:8000=127.0.0.1:8001' -> RouteSpec; raises ValueError with the expected form."""
    parts = str(text).split("=")
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f"route: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT; got {text!r}")
    name, listen, upstream = parts
    upstream_address = parse_address(upstream, f"route {name!r} upstream")
    if upstream_address[1] == 0:
        raise ValueError(f"route {name!r} upstream: expected a port from 1 to 65535; got {upstream!r}")
    return RouteSpec(name, parse_address(listen, f"route {name!r} listen"), upstream_address)


def _os_reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _linger_zero(sock: Any) -> None:
    """Make close() send RST instead of FIN (the reset_peer toxic, and resets passed on from a peer)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class _Route:
    """Runtime state of one route: its listener, its toxics (in insertion order) and its live connections.

    Invariant: every change to `toxics` calls `_notify()`, which wakes every greenlet waiting on `changed()`,
    so live connections pick up added and removed toxics at once.
    """

    def __init__(self, spec: RouteSpec, rng: random.Random):
        self.spec = spec
        self.rng = rng
        self.toxics: dict[str, Toxic] = {}
        self.connections: set[_Connection] = set()
        self.listen_address = spec.listen
        self._server: StreamServer | None = None
        self._changed = gevent.event.Event()

    # listener
    def open(self) -> None:
        server = StreamServer(self.listen_address, self._handle)
        try:
            server.start()
        except OSError as exc:
            host, port = self.listen_address
            raise ProxyError(f"route {self.spec.name!r}: cannot listen on {host}:{port}: {_os_reason(exc)}") from exc
        self._server = server
        self.listen_address = (self.listen_address[0], server.server_port)

    def close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    def _handle(self, client: Any, peer: Any) -> None:
        connection = _Connection(self, client)
        self.connections.add(connection)
        try:
            connection.run()
        finally:
            self.connections.discard(connection)

    # toxics
    def changed(self) -> gevent.event.Event:
        return self._changed

    def _notify(self) -> None:
        old, self._changed = self._changed, gevent.event.Event()
        old.set()

    def _fully_down(self) -> bool:
        return any(t.type_name == "down" and t.toxicity >= 1.0 for t in self.toxics.values())

    def add_toxic(self, toxic: Toxic) -> None:
        now = time.monotonic()
        self.toxics[toxic.name] = toxic
        for connection in list(self.connections):
            connection.meet(toxic, now)
        if self._fully_down():
            self.close_listener()  # new connections get ECONNREFUSED, as from a stopped service
        self._notify()

    def remove_toxic(self, name: str) -> Toxic | None:
        toxic = self.toxics.pop(name, None)
        self._notify()
        if toxic is not None and not self.listening and not self._fully_down():
            self.open()
        return toxic

    def to_json(self) -> dict:
        return {"name": self.spec.name, "listen": "%s:%d" % self.listen_address, "upstream": "%s:%d" % self.spec.upstream,
                "enabled": self.listening, "connections": len(self.connections),
                "toxics": [t.to_json() for t in self.toxics.values()]}

    def shutdown(self) -> None:
        self.close_listener()
        for connection in list(self.connections):
            connection.close(reset=False)


class _Connection:
    """One client connection and its upstream. Each toxic is decided once for it (toxicity) when they first meet."""

    def __init__(self, route: _Route, client: Any):
        self.route = route
        self.client = client
        self.upstream: Any = None
        self.closed = False
        self.greenlets: list[gevent.Greenlet] = []
        self._decided: dict[int, bool] = {}
        self._seen_at: dict[int, float] = {}
        self._state: dict[tuple[str, int], dict] = {}
        self._next_send = {"upstream": 0.0, "downstream": 0.0}
        self._eof: set[str] = set()
        self._writing: set[str] = set()   # directions whose writer greenlet holds a chunk (no fast path meanwhile)
        now = time.monotonic()
        for toxic in route.toxics.values():
            self.meet(toxic, now)

    def meet(self, toxic: Toxic, now: float) -> None:
        if toxic.uid not in self._decided:
            self._decided[toxic.uid] = self.route.rng.random() < toxic.toxicity
            self._seen_at[toxic.uid] = now

    def affecting(self, direction: str | None = None) -> list[Toxic]:
        return [t for t in self.route.toxics.values()
                if self._decided.get(t.uid) and (direction is None or t.applies_to(direction))]

    # lifecycle
    def run(self) -> None:
        self.greenlets.append(gevent.getcurrent())
        self.greenlets.append(gevent.spawn(self._supervise))
        try:
            # A partitioned route accepts (the kernel already did) but never reaches the upstream: the client hangs.
            while not self.closed and any(t.holds() for t in self.affecting()):
                self.route.changed().wait()
            if self.closed:
                return
            try:
                self.upstream = gevent.socket.create_connection(self.route.spec.upstream, timeout=5)
            except OSError:
                self.close(reset=True)  # the client sees a reset, the nearest thing to the upstream's refusal
                return
            if self.closed:
                return
            self.upstream.settimeout(None)
            for sock in (self.client, self.upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Nagle would add ~40 ms to small writes
            pumps = []
            for direction, src, dst in (("upstream", self.client, self.upstream), ("downstream", self.upstream, self.client)):
                queue: gevent.queue.Queue = gevent.queue.Queue(QUEUE_CHUNKS)
                pumps.append(gevent.spawn(self._read, direction, src, dst, queue))
                pumps.append(gevent.spawn(self._write, direction, dst, queue))
            self.greenlets.extend(pumps)
            gevent.joinall(pumps)
        finally:
            self.close(reset=False)

    def close(self, reset: bool) -> None:
        """Close both sockets (RST when `reset`) and stop every greenlet of this connection. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                _linger_zero(sock)
            try:
                sock.close()
            except OSError:
                pass
        current = gevent.getcurrent()
        for greenlet in self.greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)

    def _end(self, action: str) -> None:
        self.close(reset=(action == "reset"))

    def _supervise(self) -> None:
        """Runs the timed toxics (reset_peer, timeout, down): ends the connection at the earliest deadline."""
        while not self.closed:
            changed = self.route.changed()
            soonest: tuple[float, str] | None = None
            for toxic in self.affecting():
                deadline = toxic.deadline(self._seen_at[toxic.uid])
                if deadline and (soonest is None or deadline[0] < soonest[0]):
                    soonest = deadline
            now = time.monotonic()
            if soonest is not None and soonest[0] <= now:
                self._end(soonest[1])
                return
            changed.wait(None if soonest is None else soonest[0] - now)

    # data path
    def _read(self, direction: str, src: Any, dst: Any, queue: gevent.queue.Queue) -> None:
        toxics = self.route.toxics
        try:
            while True:
                data = src.recv(CHUNK_BYTES)
                if data and not toxics and queue.empty() and direction not in self._writing:
                    # Fast path: no toxic on the route and nothing pending in this direction, so order is kept
                    # without the queue and the writer greenlet (about 1.5x the throughput of the toxic path).
                    dst.sendall(data)
                    continue
                queue.put((time.monotonic(), data))
                if not data:
                    return
        except OSError:
            if not self.closed:
                self.close(reset=True)  # pass a peer's reset on to the other side

    def _write(self, direction: str, dst: Any, queue: gevent.queue.Queue) -> None:
        rng = self.route.rng
        try:
            while True:
                arrival, data = queue.get()
                self._writing.add(direction)
                toxics = self._wait_for_turn(direction, arrival)
                if not data:
                    self._wait_s(lambda: max((t.close_delay_s() for t in self.affecting(direction)), default=0.0))
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    self._eof.add(direction)
                    if len(self._eof) == 2:
                        self.close(reset=False)
                    return
                action = None
                for toxic in toxics:
                    data, toxic_action = toxic.filter(self._state.setdefault((direction, toxic.uid), {}), data, rng)
                    action = action or toxic_action
                    if action == "reset":
                        break
                if action == "reset":
                    self._end(action)
                    return
                if data:
                    self._send(direction, dst, data)
                if action:
                    self._end(action)
                    return
                if queue.empty():
                    self._writing.discard(direction)
        except OSError:
            if not self.closed:
                self.close(reset=True)

    def _wait_for_turn(self, direction: str, arrival: float) -> list[Toxic]:
        """Wait while held (partition) and until arrival + latency; both re-evaluated whenever the toxics change."""
        draws: dict[int, float] = {}
        while True:
            changed = self.route.changed()
            toxics = self.affecting(direction)
            if any(t.holds() for t in toxics):
                changed.wait()
                continue
            delay = 0.0
            for toxic in toxics:
                if toxic.uid not in draws:
                    draws[toxic.uid] = toxic.delay_s(self.route.rng)
                delay += draws[toxic.uid]
            wait = arrival + delay - time.monotonic()
            if wait <= 0:
                return toxics
            changed.wait(wait)

    def _wait_s(self, seconds_now: Any) -> None:
        """Sleep for `seconds_now()` from the start, re-reading it whenever the toxics change (removal ends the wait)."""
        start = time.monotonic()
        while True:
            changed = self.route.changed()
            wait = start + seconds_now() - time.monotonic()
            if wait <= 0:
                return
            changed.wait(wait)

    def _send(self, direction: str, dst: Any, data: bytes) -> None:
        toxics = self.affecting(direction)
        slicer = next((t for t in toxics if t.slice_sizes(0, self.route.rng) is not None), None)
        if slicer is None:
            self._paced_send(direction, dst, data)
            return
        offset = 0
        for index, size in enumerate(slicer.slice_sizes(len(data), self.route.rng)):
            if index:
                self._wait_s(lambda: slicer.slice_delay_s() if slicer.name in self.route.toxics else 0.0)
            self._paced_send(direction, dst, data[offset:offset + size])
            offset += size

    def _paced_send(self, direction: str, dst: Any, data: bytes) -> None:
        """sendall, at the lowest bandwidth-toxic rate if any (re-read per piece, so removal lifts it mid-transfer)."""
        view = memoryview(data)
        while view:
            changed = self.route.changed()
            rates = [r for r in (t.rate_bytes_per_s() for t in self.affecting(direction)) if r]
            if not rates:
                dst.sendall(view)
                return
            rate = min(rates)
            now = time.monotonic()
            if self._next_send[direction] > now:
                changed.wait(self._next_send[direction] - now)
                continue
            piece = view[:int(min(CHUNK_BYTES, max(1, rate * PACING_S)))]
            dst.sendall(piece)
            view = view[len(piece):]
            # Credit does not pile up while idle: at most one piece goes out early.
            self._next_send[direction] = max(self._next_send[direction], now) + len(piece) / rate


# -- the server ------------------------------------------------------------------------------------
class ProxyServer:
    """Routes plus the control API. Invariant: after `start()` returns, every listener and the control API are bound.

    Example:
        with ProxyServer(["echo=127.0.0.1:0=127.0.0.1:9000"], control="127.0.0.1:0") as proxy:
            ProxyClient(proxy.control_url).add_toxic("echo", "slow", "latency", {"latency_ms": 100})
            host, port = proxy.listen_address("echo")
    `threaded=None` picks by environment: greenlets when threading is gevent-patched (Locust), else one native thread
    running its own hub, so a plain process's blocking calls cannot freeze the proxy.
    """

    def __init__(self, routes: Iterable[RouteSpec | str], control: str | tuple[str, int] = "127.0.0.1:8474", *,
                 threaded: bool | None = None, seed: int | None = None):
        try:
            self.specs = [r if isinstance(r, RouteSpec) else parse_route(r) for r in routes]
            self._control = parse_address(control, "control") if isinstance(control, str) else tuple(control)
        except ValueError as exc:
            raise ProxyError(str(exc)) from None
        names = [s.name for s in self.specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ProxyError(f"route names must be unique; repeated: {', '.join(duplicates)}")
        listens = [s.listen for s in self.specs if s.listen[1]] + ([self._control] if self._control[1] else [])
        taken_twice = sorted({"%s:%d" % a for a in listens if listens.count(a) > 1})
        if taken_twice:
            raise ProxyError(f"listen addresses must be distinct; repeated: {', '.join(taken_twice)}")
        self._threaded = threaded
        self._rng = random.Random(seed)
        self._routes: dict[str, _Route] = {}
        self._wsgi: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: Any = None
        self._stop_event: gevent.event.Event | None = None
        self._started = False

    # lifecycle
    def start(self) -> "ProxyServer":
        if self._started:
            return self
        threaded = self._threaded if self._threaded is not None else not _monkey.is_module_patched("threading")
        if threaded:
            ready = threading.Event()
            errors: list[BaseException] = []
            self._thread = threading.Thread(target=self._thread_main, args=(ready, errors), name="chaos-proxy", daemon=True)
            self._thread.start()
            ready.wait()
            if errors:
                self._thread.join(5)
                self._thread = None
                raise errors[0]
        else:
            self._open()
        self._started = True
        return self

    def stop(self) -> None:
        """Close the listeners, the control API and every connection. Idempotent."""
        if not self._started:
            return
        self._started = False
        if self._thread is not None:
            self._loop.run_callback_threadsafe(self._stop_event.set)
            self._thread.join(10)
            self._thread = None
        else:
            self._close()

    def serve_forever(self, stop: gevent.event.Event) -> None:
        """Serve in the current hub until `stop` is set (the CLI's main loop)."""
        self._threaded = False
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> "ProxyServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _thread_main(self, ready: threading.Event, errors: list) -> None:
        hub = gevent.get_hub()
        try:
            self._open()
        except BaseException as exc:  # handed to start() in the caller's thread
            errors.append(exc)
            ready.set()
            hub.destroy(destroy_loop=True)
            return
        self._loop = hub.loop
        self._stop_event = gevent.event.Event()
        ready.set()
        self._stop_event.wait()
        self._close()
        hub.destroy(destroy_loop=True)

    def _open(self) -> None:
        self._routes = {spec.name: _Route(spec, self._rng) for spec in self.specs}
        try:
            for route in self._routes.values():
                route.open()
            self._wsgi = WSGIServer(self._control, self._app, log=None)
            try:
                self._wsgi.start()
            except OSError as exc:
                host, port = self._control
                raise ProxyError(f"control API: cannot listen on {host}:{port}: {_os_reason(exc)}") from exc
            self._control = (self._control[0], self._wsgi.server_port)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._wsgi is not None:
            self._wsgi.close()
            self._wsgi = None
        greenlets = []
        for route in self._routes.values():
            greenlets.extend(g for c in route.connections for g in c.greenlets)
            route.shutdown()
        gevent.killall([g for g in greenlets if g is not gevent.getcurrent()], timeout=2)

    # facts
    @property
    def threaded(self) -> bool:
        """True when serving from its own thread and hub; False when serving as greenlets of the caller's hub."""
        return self._thread is not None

    @property
    def control_url(self) -> str:
        return "http://%s:%d" % self._control

    def listen_address(self, route: str) -> tuple[str, int]:
        """The bound (host, port) of a route: the real port when the spec asked for port 0."""
        return self._routes[route].listen_address if route in self._routes else self.specs[[s.name for s in self.specs].index(route)].listen

    # control API
    def _app(self, environ: dict, start_response: Any) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        parts = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
        try:
            status, body = self._dispatch(method, parts, environ)
        except ProxyError as exc:
            status, body = 500, _error(500, "internal", str(exc))
        except Exception as exc:  # the control API must answer, never hang up: say what broke
            status, body = 500, _error(500, "internal", f"{exc.__class__.__name__}: {exc}")
        payload = b"" if status == 204 else json.dumps(body).encode()
        reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}[status]
        start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def _dispatch(self, method: str, parts: list[str], environ: dict) -> tuple[int, Any]:
        if parts == ["proxies"]:
            return _allow(method, "GET") or (200, {name: r.to_json() for name, r in self._routes.items()})
        if parts == ["reset"]:
            refused = _allow(method, "POST")
            if refused:
                return refused
            for route in self._routes.values():
                for name in list(route.toxics):
                    route.remove_toxic(name)
            return 204, None
        if len(parts) >= 2 and parts[0] == "proxies":
            route = self._routes.get(parts[1])
            if route is None:
                return 404, _error(404, "route", f"no route {parts[1]!r}; routes: {', '.join(sorted(self._routes)) or '(none)'}")
            if len(parts) == 2:
                return _allow(method, "GET") or (200, route.to_json())
            if parts[2] == "toxics" and len(parts) == 3:
                if method == "GET":
                    return 200, [t.to_json() for t in route.toxics.values()]
                if method == "POST":
                    return self._add_toxic(route, environ)
                return _allow(method, "GET, POST")
            if parts[2] == "toxics" and len(parts) == 4:
                toxic = route.toxics.get(parts[3])
                if method not in ("GET", "DELETE"):
                    return _allow(method, "GET, DELETE")
                if toxic is None:
                    return 404, _error(404, "toxic", f"route {route.spec.name!r} has no toxic {parts[3]!r}; toxics: "
                                                     f"{', '.join(route.toxics) or '(none)'}")
                if method == "GET":
                    return 200, toxic.to_json()
                route.remove_toxic(toxic.name)
                return 204, None
        return 404, _error(404, "endpoint", f"no endpoint {method} /{'/'.join(parts)}; endpoints: GET /proxies, "
                                            "GET /proxies/NAME, GET|POST /proxies/NAME/toxics, "
                                            "GET|DELETE /proxies/NAME/toxics/TOXIC, POST /reset")

    def _add_toxic(self, route: _Route, environ: dict) -> tuple[int, Any]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(min(length, 1 << 20)) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            return 400, _error(400, "invalid", f"request body: invalid JSON ({exc})")
        toxic, problems = parse_toxic(body)
        if problems:
            return 400, {**_error(400, "invalid", "; ".join(problems) if len(problems) == 1 else "\n".join(problems)),
                         "problems": problems}
        if toxic.name in route.toxics:
            return 409, _error(409, "conflict", f"route {route.spec.name!r} already has a toxic named {toxic.name!r}")
        route.add_toxic(toxic)
        return 200, toxic.to_json()


def _error(status: int, kind: str, message: str) -> dict:
    return {"error": message, "status": status, "kind": kind}


def _allow(method: str, allowed: str) -> tuple[int, Any] | None:
    if method in allowed.split(", "):
        return None
    return 405, _error(405, "method", f"method {method} not allowed here; allowed: {allowed}")


# -- the client ------------------------------------------------------------------------------------
class ProxyClient:
    """Talks to a proxy's control API with short timeouts; every failure is an InjectionError with plain text.

    Example: ProxyClient("http://127.0.0.1:8474").add_toxic("kafka", "slow", "latency", {"latency_ms": 200}, stream="upstream")
    """

    def __init__(self, control_url: str | None = None, timeout_s: float = 3.0):
        self.control_url = (control_url or default_control_url()).rstrip("/")
        self.timeout_s = timeout_s

    def routes(self) -> dict[str, dict]:
        """Every route: name -> {name, listen, upstream, enabled, connections, toxics}."""
        return self._request("GET", "/proxies", "list routes")

    def toxics(self, route: str) -> list[dict]:
        return self._request("GET", f"/proxies/{route}/toxics", f"list toxics of route {route!r}")

    def add_toxic(self, route: str, name: str, type: str, attributes: dict, stream: str = "downstream",
                  toxicity: float = 1.0) -> dict:
        """Add a toxic; returns it as the proxy stored it (defaults filled in)."""
        body = {"name": name, "type": type, "stream": stream, "toxicity": toxicity, "attributes": dict(attributes)}
        return self._request("POST", f"/proxies/{route}/toxics", f"toxic {name!r} ({type}) on route {route!r}", body)

    def remove_toxic(self, route: str, name: str) -> bool:
        """Remove a toxic; True if it was there. Idempotent: a toxic (or route) that is not there is fine."""
        try:
            self._request("DELETE", f"/proxies/{route}/toxics/{name}", f"removal of toxic {name!r} from route {route!r}")
        except _NotFound:
            return False
        return True

    def reset(self) -> None:
        """Remove every toxic of every route."""
        self._request("POST", "/reset", "reset")

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Poll until the control API answers; InjectionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.routes()
                return
            except InjectionError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _request(self, method: str, path: str, what: str, body: Any = None) -> Any:
        url = self.control_url + path
        try:
            response = requests.request(method, url, json=body, timeout=(min(1.0, self.timeout_s), self.timeout_s))
        except requests.RequestException as exc:
            raise InjectionError(f"fault proxy control API at {self.control_url} unreachable ({what}): {_reason(exc, self.timeout_s)}") from exc
        if response.status_code < 300:
            return response.json() if response.content else None
        try:
            detail = response.json()
        except ValueError:
            detail = {"error": response.text[:300], "kind": ""}
        message = f"fault proxy at {self.control_url} refused {what}: HTTP {response.status_code}: {detail.get('error')}"
        if response.status_code == 404 and detail.get("kind") == "toxic":
            raise _NotFound(message)
        if response.status_code == 404 and detail.get("kind") == "route":
            if method == "DELETE":
                raise _NotFound(message)
            raise UnknownRouteError(message)
        raise InjectionError(message)


class _NotFound(InjectionError):
    pass


def _reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout_s:g}s"
    chain, seen = exc, 0
    while chain is not None and seen < 10:
        if isinstance(chain, ConnectionRefusedError) or "Connection refused" in str(chain):
            return "connection refused"
        chain, seen = chain.__cause__ or chain.__context__, seen + 1
    return exc.__class__.__name__


# -- the command line ----------------------------------------------------------------------------
class _ArgumentParser(argparse.ArgumentParser):
    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """CLI entry: serve routes until SIGTERM/SIGINT. Returns 0 on a clean stop, 2 on bad arguments or a taken port."""
    parser = _ArgumentParser(prog="python -m chaos_events.backends.proxy",
                             description="TCP fault proxy with a Toxiproxy-like control API.")
    parser.add_argument("--control", default="127.0.0.1:8474", metavar="HOST:PORT", help="control API address (default: %(default)s)")
    parser.add_argument("--route", action="append", default=[], metavar="NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT",
                        help="a route to serve; repeat for more")
    parser.add_argument("--seed", type=int, default=None, help="random seed for toxicity and jitter (default: random)")
    try:
        args = parser.parse_args(argv)
        if not args.route:
            parser.error("at least one --route NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT is required")
        try:
            routes = [parse_route(text) for text in args.route]
            parse_address(args.control, "--control")
        except ValueError as exc:
            parser.error(str(exc))
    except _Exit as exc:
        return exc.code
    try:
        server = ProxyServer(routes, args.control, threaded=False, seed=args.seed)
        server.start()
    except ProxyError as exc:
        sys.stderr.write(f"proxy: {exc}\n")
        return 2
    stop = gevent.event.Event()
    handlers = [gevent.signal_handler(signum, stop.set) for signum in (signal.SIGTERM, signal.SIGINT)]
    for spec in server.specs:
        host, port = server.listen_address(spec.name)
        print(f"route {spec.name}: {host}:{port} -> {spec.upstream[0]}:{spec.upstream[1]}", flush=True)
    print(f"control: {server.control_url}", flush=True)
    print("proxy ready", flush=True)
    try:
        server.serve_forever(stop)
    finally:
        for handler in handlers:
            handler.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
