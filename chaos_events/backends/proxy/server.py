"""The fault proxy server: its routes, the native relay, and the control API, started and stopped as one.

Imports gevent; must not import locust, docker or prometheus_client. In a gevent-patched process (Locust, the proxy's
own process) it runs as greenlets of the current hub and never blocks it; in a plain process (tests, a supervisor)
it runs its own hub in one daemon thread. Either way the native relay is one more OS thread.
"""
from __future__ import annotations

import random
import threading
from typing import Any, Iterable

import gevent
import gevent.event
from gevent import monkey
from gevent.pywsgi import WSGIServer

from chaos_events.backends.proxy import native
from chaos_events.backends.proxy.api import ControlAPI
from chaos_events.backends.proxy.defaults import DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT
from chaos_events.backends.proxy.route import ProxyError, Route, os_reason
from chaos_events.backends.proxy.spec import RouteSpec, format_address, parse_address, parse_route


class ProxyServer:
    """Routes plus the control API. Invariant: after `start()` returns, every listener and the control API are bound.

    Example:
        with ProxyServer(["echo=127.0.0.1:0=127.0.0.1:9000"], control="127.0.0.1:0") as proxy:
            ProxyClient(proxy.control_url).add_toxic("echo", "slow", "latency", {"latency": 100})
            host, port = proxy.listen_address("echo")
    `threaded=None` picks by environment: greenlets when threading is gevent-patched (Locust), else one native thread
    running its own hub, so a plain process's blocking calls cannot freeze the proxy. `native=False` keeps every
    connection in the greenlet path (no splice relay), for comparison and for platforms without os.splice.
    """

    def __init__(self, routes: Iterable[RouteSpec | str] = (),
                 control: str | tuple[str, int] = (DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT), *,
                 threaded: bool | None = None, seed: int | None = None, native: bool = True):
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
        taken_twice = sorted({format_address(a) for a in listens if listens.count(a) > 1})
        if taken_twice:
            raise ProxyError(f"listen addresses must be distinct; repeated: {', '.join(taken_twice)}")
        self._threaded = threaded
        self._native = native and native_available()
        self._rng = random.Random(seed)
        self.routes: dict[str, Route] = {}
        self.relay: native.NativeRelay | None = None
        self._wsgi: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: Any = None
        self._stop_event: gevent.event.Event | None = None
        self._started = False

    # lifecycle
    def start(self) -> "ProxyServer":
        if self._started:
            return self
        threaded = self._threaded if self._threaded is not None else not monkey.is_module_patched("threading")
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
        self._stop_event = gevent.event.Event()
        ready.set()
        self._stop_event.wait()
        self._close()
        hub.destroy(destroy_loop=True)

    def _open(self) -> None:
        self._loop = gevent.get_hub().loop
        if self._native:
            self.relay = native.NativeRelay(self._loop.run_callback_threadsafe).start()
        try:
            for spec in self.specs:
                self.add_route(spec)
            self._wsgi = WSGIServer(self._control, ControlAPI(self), log=None)
            try:
                self._wsgi.start()
            except OSError as exc:
                raise ProxyError(f"control API: cannot listen on {format_address(self._control)}: {os_reason(exc)}") from exc
            self._control = (self._control[0], self._wsgi.server_port)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._wsgi is not None:
            self._wsgi.close()
            self._wsgi = None
        if self.relay is not None:
            self.relay.stop()  # first: afterwards no fd of any connection is the relay's
        greenlets = []
        for route in self.routes.values():
            greenlets.extend(g for c in route.connections for g in c.greenlets)
            route.shutdown()
        gevent.killall([g for g in greenlets if g is not gevent.getcurrent()], timeout=2)

    # routes (called in the server's hub: from _open and from the control API)
    def add_route(self, spec: RouteSpec) -> Route:
        """Create and open a route; ProxyError (nothing added) when its port is taken."""
        route = Route(spec, self._rng, self.relay)
        route.open()
        self.routes[spec.name] = route
        return route

    def remove_route(self, name: str) -> None:
        route = self.routes.pop(name, None)
        if route is not None:
            route.shutdown()

    # facts
    @property
    def threaded(self) -> bool:
        """True when serving from its own thread and hub; False when serving as greenlets of the caller's hub."""
        return self._thread is not None

    @property
    def control_url(self) -> str:
        return f"http://{format_address(self._control)}"

    def listen_address(self, route: str) -> tuple[str, int]:
        """The bound (host, port) of a route: the real port when the spec asked for port 0."""
        if route in self.routes:
            return self.routes[route].listen_address
        return next(s.listen for s in self.specs if s.name == route)


def native_available() -> bool:
    return native.AVAILABLE
