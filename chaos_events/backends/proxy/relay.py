"""One proxied connection: the client socket, its upstream, and the bytes between them, toxics applied live.

A connection that no toxic affects is handed to the native relay (`native.py`: splice in an OS thread) and costs no
greenlet per chunk. When a toxic that affects it is added, the relay hands it back and it continues here: per
direction a reader and a writer greenlet around a bounded queue, plus a supervisor greenlet for timed toxics
(timeout, down). Toxic logic lives in `backends/toxics.py`; this module does the waiting and the sockets.
Imports gevent; must not import locust, docker or prometheus_client.
"""
from __future__ import annotations

import socket
import struct
import time
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.queue
import gevent.socket

from chaos_events.backends.toxics import Toxic


class RouteView(Protocol):
    """What a Connection needs of its route (route.py's Route): its toxics and randomness, a wake-up when they
    change, and the native relay. Declared here so that the relay does not import the route that owns it."""

    toxics: dict[str, Toxic]
    rng: Any
    relay: Any
    upstream: tuple[str, int]

    def changed(self) -> Any: ...

    def relay_running(self) -> bool: ...


CHUNK_BYTES = 65536
# Chunks in flight per direction: enough to keep a latency toxic pipelined, bounded so a stalled peer pushes back.
QUEUE_CHUNKS = 64
# Bandwidth pacing granularity: one piece per 10 ms keeps the rate within a few percent even for short transfers.
PACING_S = 0.01
DIRECTIONS = ("upstream", "downstream")
UPSTREAM_CONNECT_TIMEOUT_S = 5


def linger_zero(sock: Any) -> None:
    """Make close() send RST instead of FIN (the reset_peer toxic, and resets passed on from a peer)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class Connection:
    """One client connection and its upstream. Each toxic is decided once for it (toxicity) when they first meet.

    Invariant: while `native` is True the native relay owns both sockets; `close()` then asks the relay to let go and
    the close happens when it has (the run greenlet does it), so no fd is ever closed under the relay's feet.
    """

    def __init__(self, route: RouteView, client: Any):
        self.route = route
        self.client = client
        self.upstream: Any = None
        self.closed = False
        self.native = False
        self.greenlets: list[gevent.Greenlet] = []
        self._close_wanted: bool | None = None   # a close asked while native: reset or not
        self._native_result: gevent.event.AsyncResult | None = None
        self._supervisor: gevent.Greenlet | None = None
        self._decided: dict[int, bool] = {}
        self._seen_at: dict[int, float] = {}
        self._state: dict[tuple[str, int], dict] = {}
        self._next_send = {"upstream": 0.0, "downstream": 0.0}
        self._eof: set[str] = set()
        self._writing: set[str] = set()   # directions whose writer greenlet holds a chunk (no fast path meanwhile)
        now = time.monotonic()
        for toxic in route.toxics.values():
            self.meet(toxic, now)

    # toxics
    def meet(self, toxic: Toxic, now: float) -> None:
        if toxic.uid not in self._decided:
            self._decided[toxic.uid] = self.route.rng.random() < toxic.toxicity
            self._seen_at[toxic.uid] = now
        if self._decided[toxic.uid]:
            if self.native and self.route.relay_running():
                self.route.relay.release(self)  # the toxic applies from the next chunk on, in the greenlet path
            if self._supervisor is None and not self.closed:
                self._supervisor = gevent.spawn(self._supervise)
                self.greenlets.append(self._supervisor)

    def toxic_removed(self, toxic: Toxic) -> None:
        if self._decided.pop(toxic.uid, False) and toxic.on_removed():
            self.close(reset=toxic.on_removed() == "reset")

    def forget(self, toxic: Toxic) -> None:
        self._decided.pop(toxic.uid, None)

    def affecting(self, direction: str | None = None) -> list[Toxic]:
        return [t for t in self.route.toxics.values()
                if self._decided.get(t.uid) and (direction is None or t.applies_to(direction))]

    # lifecycle
    def run(self) -> None:
        self.greenlets.append(gevent.getcurrent())
        try:
            # A partitioned route accepts (the kernel already did) but never reaches the upstream: the client hangs.
            while not self.closed and any(t.holds() for t in self.affecting()):
                self.route.changed().wait()
            if self.closed or not self._connect_upstream():
                return
            leftovers: dict[str, bytes] = {}
            if self.route.relay_running() and not self.affecting():
                outcome, leftovers, eofs = self._run_native()
                self._eof |= eofs
                if outcome != "released" or self._close_wanted is not None:
                    self.close(reset=outcome == "reset" or bool(self._close_wanted))
                    return
            self._run_pumps(leftovers)
        finally:
            self.close(reset=False)

    def _connect_upstream(self) -> bool:
        try:
            self.upstream = gevent.socket.create_connection(self.route.upstream, timeout=UPSTREAM_CONNECT_TIMEOUT_S)
        except OSError:
            self.close(reset=True)  # the client sees a reset, the nearest thing to the upstream's refusal
            return False
        if self.closed:
            return False
        self.upstream.settimeout(None)
        for sock in (self.client, self.upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Nagle would add ~40 ms to small writes
        return True

    def _run_native(self) -> tuple[str, dict[str, bytes], set[str]]:
        """Hand both sockets to the native relay and wait until it lets go: (outcome, leftovers, half-closed directions)."""
        self._native_result = gevent.event.AsyncResult()
        self.native = True
        self.route.relay.adopt(self, self.client.fileno(), self.upstream.fileno(), self._native_ended)
        return self._native_result.get()

    def _native_ended(self, outcome: str, leftovers: dict[str, bytes], eofs: set[str]) -> None:
        """Runs in the hub once the relay no longer touches the sockets."""
        self.native = False
        if self._native_result is not None:
            self._native_result.set((outcome, leftovers, eofs))

    def _run_pumps(self, leftovers: dict[str, bytes]) -> None:
        pumps = []
        for direction, src, dst in (("upstream", self.client, self.upstream), ("downstream", self.upstream, self.client)):
            if direction in self._eof:
                continue
            queue: gevent.queue.Queue = gevent.queue.Queue(QUEUE_CHUNKS)
            if leftovers.get(direction):
                queue.put((time.monotonic(), leftovers[direction]))  # read before the hand-back: it goes first
            pumps.append(gevent.spawn(self._read, direction, src, dst, queue))
            pumps.append(gevent.spawn(self._write, direction, dst, queue))
        self.greenlets.extend(pumps)
        gevent.joinall(pumps)

    def close(self, reset: bool) -> None:
        """Close both sockets (RST when `reset`) and stop every greenlet of this connection. Idempotent."""
        if self.closed:
            return
        if self.native and self.route.relay_running():
            self._close_wanted = bool(self._close_wanted) or reset
            self.route.relay.release(self)
            return
        self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                linger_zero(sock)
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
        """Runs the timed toxics (timeout, down): ends the connection at the earliest deadline."""
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
                if data and queue.empty() and direction not in self._writing and not (toxics and self.affecting(direction)):
                    # Fast path: no toxic affects this direction and nothing is pending in it, so order is kept
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
        try:
            while True:
                arrival, data = queue.get()
                self._writing.add(direction)
                toxics = self._wait_for_turn(direction, arrival)
                if not data:
                    self._half_close(direction, dst)
                    return
                data, action, delay_s = self._apply(direction, toxics, data)
                if action == "reset" and delay_s:
                    gevent.sleep(delay_s)  # reset_peer: the reset is due `timeout` after the first data, as in Toxiproxy
                if data and action != "reset":
                    self._send(direction, dst, data)
                if action:
                    self._end(action)
                    return
                if queue.empty():
                    self._writing.discard(direction)
        except OSError:
            if not self.closed:
                self.close(reset=True)

    def _apply(self, direction: str, toxics: list[Toxic], data: bytes) -> tuple[bytes, str | None, float]:
        """Run the chunk through each toxic's filter: (data left, first action asked, that toxic's delay)."""
        rng = self.route.rng
        for toxic in toxics:
            data, action = toxic.filter(self._state.setdefault((direction, toxic.uid), {}), data, rng)
            if action:
                return data, action, toxic.end_delay_s()
        return data, None, 0.0

    def _half_close(self, direction: str, dst: Any) -> None:
        self._wait_s(lambda: max((t.close_delay_s() for t in self.affecting(direction)), default=0.0))
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._eof.add(direction)
        if len(self._eof) == 2:
            self.close(reset=False)

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
