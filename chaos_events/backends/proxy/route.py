"""One route of the fault proxy (a Toxiproxy "proxy"): its listener, its toxics and its live connections.

Imports gevent; must not import locust, docker or prometheus_client. The server (`server.py`) owns the routes; the
control API (`api.py`) changes them; each connection (`relay.py`) reads the route's toxics as they are now.
"""
from __future__ import annotations

import os
import random
import time
from typing import Any, Callable

import gevent.event
from gevent.server import StreamServer

from chaos_events.backends.proxy.native import NativeRelay
from chaos_events.backends.proxy.relay import Connection
from chaos_events.backends.proxy.spec import RouteSpec, format_address
from chaos_events.backends.toxics import Toxic
from chaos_events.errors import ChaosError


class ProxyError(ChaosError):
    """The proxy cannot start or serve as asked (bad route, port taken)."""


def os_reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class Route:
    """Runtime state of one route. `enabled` is the API's switch (Toxiproxy's); the listener is open while the route
    is enabled and not fully down (a `down` toxic of toxicity 1).

    Invariant: every change to `toxics` calls `_notify()`, which wakes every greenlet waiting on `changed()`,
    so live connections pick up added, updated and removed toxics at once.
    Example: Route(RouteSpec("api", ("127.0.0.1", 0), ("127.0.0.1", 8001)), random.Random(), relay).open()
    """

    def __init__(self, spec: RouteSpec, rng: random.Random, relay: NativeRelay | None = None):
        self.spec = spec
        self.rng = rng
        self.relay = relay
        self.enabled = spec.enabled
        self.upstream = spec.upstream
        self.toxics: dict[str, Toxic] = {}
        self.connections: set[Connection] = set()
        self.listen_address = spec.listen
        self._server: StreamServer | None = None
        self._changed = gevent.event.Event()

    def relay_running(self) -> bool:
        return self.relay is not None and self.relay.running

    # listener
    def open(self) -> None:
        """Bind the listener if the route should listen (enabled, not down). ProxyError when the port is taken."""
        if self._server is not None or not self.enabled or self._fully_down():
            return
        server = StreamServer(self.listen_address, self._handle)
        try:
            server.start()
        except OSError as exc:
            raise ProxyError(f"route {self.spec.name!r}: cannot listen on {format_address(self.listen_address)}: "
                             f"{os_reason(exc)}") from exc
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
        connection = Connection(self, client)
        self.connections.add(connection)
        try:
            connection.run()
        finally:
            self.connections.discard(connection)

    # the API's changes
    def set_enabled(self, enabled: bool) -> None:
        """Disable: stop listening and close every connection (as Toxiproxy). Enable: listen again, on the same port."""
        if enabled == self.enabled:
            return
        self.enabled = enabled
        if enabled:
            self.open()
        else:
            self.close_listener()
            self.close_connections()

    def respec(self, spec: RouteSpec) -> None:
        """A new listen or upstream address: stop, change, start again (as Toxiproxy); then the new `enabled`."""
        if (spec.listen, spec.upstream) != (self.listen_address, self.upstream):
            self.close_listener()
            self.close_connections()
            self.listen_address, self.upstream = spec.listen, spec.upstream
            self.enabled = False
        if spec.enabled:
            self.enabled = True
            self.open()
        else:
            self.set_enabled(False)

    def close_connections(self) -> None:
        for connection in list(self.connections):
            connection.close(reset=False)

    def changed(self) -> gevent.event.Event:
        return self._changed

    def _notify(self) -> None:
        old, self._changed = self._changed, gevent.event.Event()
        old.set()

    def _fully_down(self) -> bool:
        return any(t.type_name == "down" and t.toxicity >= 1.0 for t in self.toxics.values())

    def add_toxic(self, toxic: Toxic) -> None:
        self._put(toxic, lambda connection, now: connection.meet(toxic, now))

    def update_toxic(self, toxic: Toxic) -> None:
        """Replace the toxic of that name in place (its position in the chain is kept)."""
        old = self.toxics[toxic.name]

        def meet(connection: Connection, now: float) -> None:
            if old.uid != toxic.uid:
                connection.forget(old)  # a new toxicity: decided afresh
            connection.meet(toxic, now)
        self._put(toxic, meet)

    def _put(self, toxic: Toxic, meet: Callable[[Connection, float], None]) -> None:
        now = time.monotonic()
        self.toxics[toxic.name] = toxic
        for connection in list(self.connections):
            meet(connection, now)
        if self._fully_down():
            self.close_listener()  # new connections get ECONNREFUSED, as from a stopped service
        self._notify()

    def remove_toxic(self, name: str) -> Toxic | None:
        toxic = self.toxics.pop(name, None)
        self._notify()
        if toxic is not None:
            for connection in list(self.connections):
                connection.toxic_removed(toxic)
            self.open()
        return toxic

    def remove_all_toxics(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)

    def to_json(self) -> dict:
        """Toxiproxy's proxy object; toxics upstream first, then downstream, each in the order they were added."""
        toxics = sorted(self.toxics.values(), key=lambda t: t.stream != "upstream")
        return {"name": self.spec.name, "listen": format_address(self.listen_address),
                "upstream": format_address(self.upstream), "enabled": self.enabled,
                "toxics": [t.to_json() for t in toxics]}

    def shutdown(self) -> None:
        self.close_listener()
        self.close_connections()
