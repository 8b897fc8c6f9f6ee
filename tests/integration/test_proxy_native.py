"""The proxy's native pass-through (splice in an OS thread) keeps the proxy's semantics: bytes intact and in order, a
route that gains a toxic mid-connection applies it from the next chunk, a peer's reset is passed on as a reset, a
half-close as a half-close, and reset_peer, down and disable reach connections the relay holds.

Each test runs with the relay (native) and without it (greenlets only), on real loopback sockets.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import threading
import time

import pytest

from chaos_events.backends import process as processes

from chaos_events.backends.proxy import ProxyClient, ProxyServer
from tests.helpers import running_echo_server


@contextlib.contextmanager
def _server(handle):
    """A one-shot-per-connection TCP server on a free port; `handle(conn)` runs in a thread per connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        listener.close()


def _reply_after_eof(conn):
    """Reads to EOF, then sends b"got N" and closes: the downstream must still flow after the upstream half-closed."""
    with conn:
        total = 0
        while chunk := conn.recv(65536):
            total += len(chunk)
        conn.sendall(b"got %d" % total)


def _reset_after_first_data(conn):
    conn.recv(10)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@pytest.fixture(scope="module")
def upstreams():
    with running_echo_server() as echo, _server(_reply_after_eof) as eof, _server(_reset_after_first_data) as rst:
        yield {"echo": echo, "eof": eof, "rst": rst}


@pytest.fixture(params=[True, False], ids=["native", "greenlets"])
def proxy(request, upstreams):
    routes = [f"{name}=127.0.0.1:0=127.0.0.1:{address[1]}" for name, address in upstreams.items()]
    server = ProxyServer(routes, control="127.0.0.1:0", seed=5, native=request.param).start()
    try:
        yield server
    finally:
        server.stop()


def _connect(proxy, route, timeout=5.0):
    sock = socket.create_connection(proxy.listen_address(route), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _round_trip(sock, payload=b"ping"):
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "closed during a round trip"
        got += chunk
    assert got == payload
    return time.perf_counter() - start


def _native_connections(proxy, route):
    return [c.native for c in proxy.routes[route].connections]


def test_bulk_bytes_arrive_intact_and_in_order(proxy):
    data = os.urandom(4 << 20)
    with _connect(proxy, "echo") as sock:
        _round_trip(sock)
        assert _native_connections(proxy, "echo") == [proxy.relay is not None]
        sender = threading.Thread(target=sock.sendall, args=(data,))
        sender.start()
        digest, got = hashlib.sha256(), 0
        while got < len(data):
            chunk = sock.recv(1 << 20)
            assert chunk
            digest.update(chunk)
            got += len(chunk)
        sender.join()
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_toxic_added_mid_connection_applies_from_the_next_chunk(proxy):
    client = ProxyClient(proxy.control_url)
    with _connect(proxy, "echo") as sock:
        fast = min(_round_trip(sock) for _ in range(3))
        client.add_toxic("echo", "slow", "latency", {"latency": 150})
        # handed back to the greenlet path: the connection's own greenlet does it when the route changes
        assert processes.wait_until(lambda: _native_connections(proxy, "echo") == [False], 2.0)
        assert _round_trip(sock) >= 0.14
        client.remove_toxic("echo", "slow")
        assert _round_trip(sock) < fast + 0.05
        client.add_toxic("echo", "spare", "latency", {"latency": 150}, toxicity=0.0)
        with _connect(proxy, "echo") as unaffected:  # a toxic that spares it does not take it off the relay
            assert _round_trip(unaffected) < 0.1
            assert _native_connections(proxy, "echo").count(proxy.relay is not None) >= 1


def test_a_peer_reset_is_passed_on_as_a_reset(proxy):
    with _connect(proxy, "rst") as sock:
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            while sock.recv(10):
                pass


def test_a_half_close_is_passed_on_and_the_other_direction_keeps_flowing(proxy):
    with _connect(proxy, "eof") as sock:
        sock.sendall(b"a" * 100_000)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(100):
            got += chunk
    assert got == b"got 100000"


def test_reset_peer_down_and_disable_reach_held_connections(proxy):
    client = ProxyClient(proxy.control_url)
    with _connect(proxy, "echo") as sock:
        _round_trip(sock)
        client.add_toxic("echo", "rst", "reset_peer", {"timeout": 0}, stream="upstream")
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    client.reset()
    with _connect(proxy, "echo") as sock:
        _round_trip(sock)
        client.add_toxic("echo", "off", "down", {})
        assert sock.recv(10) == b""
    client.reset()
    with _connect(proxy, "echo") as sock:
        _round_trip(sock)
        client.set_enabled("echo", False)
        assert sock.recv(10) == b""
    client.reset()
    with _connect(proxy, "echo") as sock:
        assert _round_trip(sock) < 1
