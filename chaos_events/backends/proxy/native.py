"""Native pass-through for connections that no toxic affects: one OS thread, one epoll, splice(2) through a pipe per
direction, so the bytes never enter Python and no greenlet runs per chunk.

Why: the greenlet path costs a hub switch per recv and per send; a loopback hop through it moved 0.26 of the
direct throughput. The relay owns a connection's two socket fds from `adopt` until it hands them back (`release`, when
a toxic that affects the connection is added or the connection must close), and only then may the hub touch them:
every end is reported to the hub, in the hub, through `call_in_hub`, after the fds left the epoll. What it keeps:
a peer's reset is passed on as a reset (the hub closes both sides with SO_LINGER 0), a half-close is passed on as a
half-close (shutdown SHUT_WR), and bytes already read into a pipe when the hub takes a connection back are handed over
in order (`leftovers`).

Uses the unpatched thread, lock and epoll (gevent.monkey.get_original), so it works the same in a gevent-patched
process (Locust, the proxy's own process) and in a plain one; must not import locust, docker or prometheus_client.
"""
from __future__ import annotations

import collections
import errno
import fcntl
import os
import select
import socket as _stdlib_socket
from typing import Any, Callable

import _socket
from gevent import monkey

_epoll = monkey.get_original("select", "epoll")
_start_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")

AVAILABLE = hasattr(os, "splice")
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT
_BROKEN = select.EPOLLERR | select.EPOLLHUP
READ, WRITE, EOF = "read", "write", "eof"
ROUNDS = 8  # splices per event before the relay moves on to other connections (level-triggered: it comes back)


class _Flow:
    """One direction of a connection: src -> pipe -> dst. `buffered` bytes sit in the pipe."""

    __slots__ = ("direction", "src", "dst", "pipe_r", "pipe_w", "buffered", "state")

    def __init__(self, direction: str, src: int, dst: int):
        self.direction, self.src, self.dst = direction, src, dst
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.pipe_w, _F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # the default 64 KiB pipe still works, only with more splices per megabyte
        self.buffered = 0
        self.state = READ

    def leftover(self) -> bytes:
        parts = []
        while self.buffered > 0:
            try:
                part = os.read(self.pipe_r, self.buffered)
            except BlockingIOError:
                break
            if not part:
                break
            parts.append(part)
            self.buffered -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        for fd in (self.pipe_r, self.pipe_w):
            try:
                os.close(fd)
            except OSError:
                pass


class _Pair:
    """An adopted connection: its two flows and the hub callback that learns how the relay let go of it."""

    __slots__ = ("key", "client", "upstream", "flows", "on_end", "done", "masks")

    def __init__(self, key: Any, client: int, upstream: int, on_end: Callable, eofs: set[str]):
        self.key, self.client, self.upstream, self.on_end = key, client, upstream, on_end
        self.flows = {"upstream": _Flow("upstream", client, upstream), "downstream": _Flow("downstream", upstream, client)}
        for direction in eofs:
            self.flows[direction].state = EOF
        self.done = False
        self.masks: dict[int, int] = {}


class NativeRelay:
    """Relays adopted connections in one native thread until each ends or is released.

    Invariant: while a connection is adopted, only the relay thread reads, writes or shuts down its fds; the hub
    closes them only after `on_end(outcome, leftovers, eofs)` ran, where outcome is "eof" (both directions ended
    cleanly), "reset" (a peer reset, or a send failed) or "released" (taken back: `leftovers` maps a direction to
    the bytes read but not yet sent, `eofs` lists the directions already half-closed).
    Example: relay = NativeRelay(loop.run_callback_threadsafe).start(); relay.adopt(conn, cfd, ufd, on_end); relay.release(conn)
    """

    def __init__(self, call_in_hub: Callable[..., Any]):
        self._call_in_hub = call_in_hub
        self._ep: Any = None
        self._wake_r = self._wake_w = -1
        self._commands: collections.deque = collections.deque()
        self._pairs: dict[Any, _Pair] = {}
        self._by_fd: dict[int, tuple[_Pair, _Flow, _Flow]] = {}
        self._stopping = False
        self._stopped = _allocate_lock()
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> "NativeRelay":
        self._ep = _epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._ep.register(self._wake_r, _IN)
        self._stopped.acquire()
        self._running = True
        _start_thread(self._main, ())
        return self

    def stop(self) -> None:
        """Release every connection and end the thread; returns once the relay no longer touches any fd."""
        if not self._running:
            return
        self._running = False
        self._stopping = True
        self._wake()
        with self._stopped:
            pass
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._ep.close()

    def adopt(self, key: Any, client_fd: int, upstream_fd: int, on_end: Callable, eofs: set[str] = frozenset()) -> None:
        self._commands.append(("adopt", _Pair(key, client_fd, upstream_fd, on_end, set(eofs))))
        self._wake()

    def release(self, key: Any) -> None:
        """Hand the connection back (its on_end runs with "released"); nothing if it already ended."""
        self._commands.append(("release", key))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    # -- the thread ------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            while not self._stopping:
                for fd, mask in self._ep.poll(-1):
                    if fd == self._wake_r:
                        self._commands_due()
                        continue
                    entry = self._by_fd.get(fd)
                    if entry is not None:
                        self._event(entry, mask)
            self._commands_due()
            for pair in list(self._pairs.values()):
                self._end(pair, "released")
        finally:
            self._stopped.release()

    def _commands_due(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._commands:
            verb, arg = self._commands.popleft()
            if verb == "adopt":
                self._pairs[arg.key] = arg
                for fd in (arg.client, arg.upstream):
                    flow_out = arg.flows["upstream" if fd == arg.client else "downstream"]
                    flow_in = arg.flows["downstream" if fd == arg.client else "upstream"]
                    self._by_fd[fd] = (arg, flow_out, flow_in)
                    arg.masks[fd] = self._mask(flow_out, flow_in)
                    self._ep.register(fd, arg.masks[fd])
            elif arg in self._pairs:
                self._end(self._pairs[arg], "released")

    @staticmethod
    def _mask(flow_out: _Flow, flow_in: _Flow) -> int:
        return (_IN if flow_out.state == READ else 0) | (_OUT if flow_in.state == WRITE else 0)

    def _event(self, entry: tuple[_Pair, _Flow, _Flow], mask: int) -> None:
        pair, flow_out, flow_in = entry
        handled = False
        if mask & (_IN | _BROKEN) and flow_out.state == READ:
            handled = True
            self._pump(pair, flow_out)
        if not pair.done and mask & (_OUT | _BROKEN) and flow_in.state == WRITE:
            handled = True
            self._pump(pair, flow_in)
        if not pair.done and not handled and mask & _BROKEN:
            self._end(pair, "reset")  # an error or hang-up on a socket neither flow can act on: the peer reset

    def _pump(self, pair: _Pair, flow: _Flow) -> None:
        """Move what is ready from src to dst; leave the flow waiting to read, waiting to write, or ended."""
        for _ in range(ROUNDS):
            if flow.buffered:
                try:
                    flow.buffered -= os.splice(flow.pipe_r, flow.dst, flow.buffered, flags=_FLAGS)
                except BlockingIOError:
                    break
                except OSError:
                    self._end(pair, "reset")
                    return
                if flow.buffered:
                    continue
            try:
                moved = os.splice(flow.src, flow.pipe_w, PIPE_BYTES, flags=_FLAGS)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                self._end(pair, "reset")
                return
            if moved == 0:
                self._half_close(pair, flow)
                return
            flow.buffered += moved
        flow.state = WRITE if flow.buffered else READ
        self._update(pair)

    def _half_close(self, pair: _Pair, flow: _Flow) -> None:
        flow.state = EOF
        raw = _socket.socket(fileno=flow.dst)
        try:
            raw.shutdown(_stdlib_socket.SHUT_WR)
        except OSError:
            pass
        finally:
            raw.detach()  # the fd stays the hub's to close
        if all(f.state == EOF for f in pair.flows.values()):
            self._end(pair, "eof")
        else:
            self._update(pair)

    def _update(self, pair: _Pair) -> None:
        for fd in (pair.client, pair.upstream):
            _, flow_out, flow_in = self._by_fd[fd]
            mask = self._mask(flow_out, flow_in)
            if mask != pair.masks[fd]:
                pair.masks[fd] = mask
                self._ep.modify(fd, mask)

    def _end(self, pair: _Pair, outcome: str) -> None:
        if pair.done:
            return
        pair.done = True
        for fd in (pair.client, pair.upstream):
            self._by_fd.pop(fd, None)
            try:
                self._ep.unregister(fd)
            except OSError:
                pass
        self._pairs.pop(pair.key, None)
        leftovers = {d: f.leftover() for d, f in pair.flows.items()} if outcome == "released" else {}
        eofs = {d for d, f in pair.flows.items() if f.state == EOF}
        for flow in pair.flows.values():
            flow.close()
        self._call_in_hub(pair.on_end, outcome, {d: b for d, b in leftovers.items() if b}, eofs)
