"""Benchmark 5: the harness's TCP fault proxy, Toxiproxy and a direct connection, side by side in one run.

For each path (direct loopback, the harness's proxy, Toxiproxy), with no toxic and with a 0 ms latency toxic:
- bulk: 128 MB up (client -> server) and 128 MB down through bench/_netpeer.py, MB/s (the lower of the two counts);
- small HTTP requests: wrk against nginx (100-byte file, keep-alive), the rate with 32 connections, and p50/p99
  latency with one connection (wrk's own distribution); "added" latency is the path's minus direct's;
- 64-byte TCP round trips on one connection, p50/p99.
Blocks alternate the paths and the toxic. Each proxy runs as its own process (`python -m chaos_events.backends.proxy`
as the demo runs it; `toxiproxy-server -config` for Toxiproxy); the proxies, nginx and the peer share core 1 and the
client (wrk, the bench) has core 0, the conservative layout for a proxy (it competes with the server, direct does not).
Four figures: bulk proxy / direct, HTTP rate proxy / direct (no toxic), bulk proxy / Toxiproxy, and added p99 HTTP
latency proxy / Toxiproxy.
"""
from __future__ import annotations

import os
import socket
import struct
import time

from contextlib import ExitStack

from ._proxy_parts import proxy_process, set_toxic, wrk
from .common import (LOAD_CORE, PYTHON, TARGET_CORE, free_port, make_result, median, nginx, percentile, start, stop,
                     wait_port, workdir)

NAME = "proxy"
TITLE = "Fault proxy, no toxic: bulk throughput proxy / direct"
GOAL = 0.8
PATHS = ("direct", "harness", "toxiproxy")
TOXICS = ("none", "latency0")
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
    """MB/s sending `size` bytes to the peer, counted when it confirms it received them all (no half-close: Toxiproxy
    closes both ways on a client's FIN)."""
    t0 = time.perf_counter()
    with _connect(port, b"U") as sock:
        sock.sendall(struct.pack("!Q", size))
        sent = 0
        while sent < size:
            sock.sendall(CHUNK)
            sent += len(CHUNK)
        (received,) = struct.unpack("!Q", _recv_exact(sock, 8))
    if received != sent:
        raise RuntimeError(f"peer received {received} of {sent} bytes")
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


def _measure(ports: dict[str, int], http_url: str, sizes: dict) -> dict:
    """One block's figures for one path: bulk MB/s up and down, wrk rate and latency, 64-byte round trips."""
    rate = wrk(http_url, 32, sizes["wrk_s"])
    latency = wrk(http_url, 1, sizes["wrk_latency_s"])
    return {"up_MBps": upload(ports["bulk"], sizes["bulk"]), "down_MBps": download(ports["bulk"], sizes["bulk"]),
            "rps": rate["rps"], "http_p50_ms": latency["p50_ms"], "http_p99_ms": latency["p99_ms"],
            "rtt_s": round_trips(ports["bulk"], sizes["rtt_n"])}


def _collect(quick: bool) -> dict:
    """samples[path][toxic] = list of block figures, for every path and toxic, alternated in one run."""
    sizes = ({"bulk": 32 << 20, "wrk_s": 2, "wrk_latency_s": 1, "rtt_n": 300, "blocks": 2} if quick else
             {"bulk": 128 << 20, "wrk_s": 4, "wrk_latency_s": 2, "rtt_n": 600, "blocks": 3})
    samples: dict = {p: {t: [] for t in TOXICS} for p in PATHS}
    affinity = os.sched_getaffinity(0)
    with workdir(NAME) as d, nginx(core=TARGET_CORE) as http_url, ExitStack() as stack:
        peer_port = free_port()
        peer = start([PYTHON, "-m", "bench._netpeer", str(peer_port)], core=TARGET_CORE, log=d / "peer.log")
        stack.callback(stop, peer)
        wait_port(peer_port, proc=peer, what="echo peer")
        upstreams = {"bulk": peer_port, "http": int(http_url.rsplit(":", 1)[1])}
        ports = {"direct": upstreams}
        clients = {}
        for kind in ("harness", "toxiproxy"):
            ports[kind] = {name: free_port() for name in upstreams}
            clients[kind] = stack.enter_context(proxy_process(kind, upstreams, ports[kind], free_port(), TARGET_CORE,
                                                              d / f"{kind}.log"))
        try:
            os.sched_setaffinity(0, {LOAD_CORE})
            for _ in range(sizes["blocks"]):
                for toxic in TOXICS:
                    for kind, client in clients.items():
                        set_toxic(client, toxic)
                    for path in PATHS if toxic == "none" else PATHS[1:]:
                        samples[path][toxic].append(_measure(ports[path], f"http://127.0.0.1:{ports[path]['http']}/", sizes))
        finally:
            os.sched_setaffinity(0, affinity)
    samples["direct"].pop("latency0")
    samples["sizes"] = sizes
    return samples


def _summary(blocks: list[dict]) -> dict:
    rtt = [x for b in blocks for x in b["rtt_s"]]
    return {"bulk_MBps": round(min(median([b["up_MBps"] for b in blocks]), median([b["down_MBps"] for b in blocks]))),
            "up_MBps": [round(b["up_MBps"]) for b in blocks], "down_MBps": [round(b["down_MBps"]) for b in blocks],
            "http_rps": round(median([b["rps"] for b in blocks])), "rps": [round(b["rps"]) for b in blocks],
            "http_p50_ms": round(median([b["http_p50_ms"] for b in blocks]), 4),
            "http_p99_ms": round(median([b["http_p99_ms"] for b in blocks]), 4),
            "rtt_p50_ms": round(percentile(rtt, 50) * 1000, 4), "rtt_p99_ms": round(percentile(rtt, 99) * 1000, 4)}


def run(quick: bool = False) -> list[dict]:
    samples = _collect(quick)
    sizes = samples.pop("sizes")
    table = {path: {toxic: _summary(blocks) for toxic, blocks in by_toxic.items()} for path, by_toxic in samples.items()}
    direct = table["direct"]["none"]
    for path in ("harness", "toxiproxy"):
        for toxic, row in table[path].items():
            row["added_http_p50_ms"] = round(row["http_p50_ms"] - direct["http_p50_ms"], 4)
            row["added_http_p99_ms"] = round(row["http_p99_ms"] - direct["http_p99_ms"], 4)
            row["rps_vs_direct"] = round(row["http_rps"] / direct["http_rps"], 3)
            row["bulk_vs_direct"] = round(row["bulk_MBps"] / direct["bulk_MBps"], 3)
    harness, toxiproxy = table["harness"], table["toxiproxy"]
    details = {"table": table, "sizes": sizes, "pinning": "wrk and the bench client on core 0; nginx, the echo peer "
               "and both proxies on core 1", "toxics": {"none": "no toxic", "latency0": "a 0 ms latency toxic downstream"}}
    bulk_vs_toxiproxy = min(harness[t]["bulk_MBps"] / toxiproxy[t]["bulk_MBps"] for t in TOXICS)
    # Both share the direct baseline, so "less added p99 than Toxiproxy" is "a lower p99 than Toxiproxy's"; the ratio
    # of the totals stays meaningful when noise makes an added figure negative.
    p99_vs_toxiproxy = max(harness[t]["http_p99_ms"] / toxiproxy[t]["http_p99_ms"] for t in TOXICS)
    return [
        make_result(NAME, TITLE, harness["none"]["bulk_vs_direct"], "ratio", GOAL, ">=", LIMITS["bulk"], details),
        make_result("proxy_http_rate", "Fault proxy, no toxic: small HTTP requests/s proxy / direct (wrk, nginx)",
                    harness["none"]["rps_vs_direct"], "ratio", 0.8, ">=", LIMITS["http_rate"], details),
        make_result("proxy_vs_toxiproxy_bulk", "Fault proxy vs Toxiproxy: bulk throughput, worse of no toxic and 0 ms latency",
                    round(bulk_vs_toxiproxy, 3), "ratio", 1.0, ">=", LIMITS["vs_bulk"], details),
        make_result("proxy_vs_toxiproxy_p99", "Fault proxy vs Toxiproxy: HTTP p99 latency (one connection), worse of no toxic and 0 ms latency",
                    round(p99_vs_toxiproxy, 3), "ratio", 1.0, "<=", LIMITS["vs_p99"], details),
    ]


LIMITS = {
    "bulk": "with no toxic, connections go through the native relay (splice through a 1 MiB pipe, one OS thread, no "
            "bytes in Python); what is left is the second TCP hop's kernel work on core 1, shared with the peer",
    "http_rate": "core 1, which nginx, the proxy and the kernel work of two extra loopback hops per request share: "
                 "py-spy of the proxy under wrk -c32 shows its relay thread ~78% idle in epoll_wait and ~22% in splice "
                 "and Python, so the proxy waits for the core rather than burning it; direct has the core to nginx "
                 "alone. The machine's load average was 5-10 during the run (other sessions), so blocks vary by 2x",
    "vs_bulk": "with a toxic, every chunk goes through greenlets (a recv, a queue, a writer greenlet, a send) in Python",
    "vs_p99": "with a toxic, each request's chunks go recv greenlet -> queue -> writer greenlet -> send on the "
              "gevent hub: py-spy (--gil, wrk -c1, 0 ms latency) shows the proxy holding the GIL ~10% of the time "
              "at ~3,100 req/s, ~30 us of Python per request, 18% of it in gevent's sendall asking the kernel for "
              "SO_SNDBUF on every call; the tail is waits for core 1, shared with nginx and other sessions (load "
              "average 5-6), for the two extra hub wake-ups per request. No toxic: 9.5 vs 6.7 ms this run, below "
              "Toxiproxy's in the one before",
}
