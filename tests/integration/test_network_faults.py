"""Network faults through the real TCP fault proxy: each toxic's effect on real sockets, live removal, the proxy as its
own process, and every network Fault type through inject -> revert -> revert and revert-only.

An in-process echo upstream and an in-process proxy (its own hub in one thread) on dynamic ports; the CLI test starts
the proxy as a subprocess and ends it by pid. Tolerances follow the proxy's accuracy promise (latency within ±20% or
±10 ms, bandwidth within ±20%), measured as medians.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest

from chaos_events.backends.proxy import ProxyClient, ProxyServer
from chaos_events.errors import InjectionError, RevertError
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.faults.network import NETWORK_FAULTS
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import ROOT, free_port, running_echo_server, stop_group


@pytest.fixture(scope="module")
def echo():
    with running_echo_server() as address:
        yield address


@pytest.fixture
def proxy(echo):
    server = ProxyServer([f"echo=127.0.0.1:0=127.0.0.1:{echo[1]}"], control="127.0.0.1:0", seed=7).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(proxy):
    return ProxyClient(proxy.control_url)


def _connect(address, timeout=2.0):
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _round_trip_ms(sock, payload=b"ping"):
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed during a round trip"
        got += chunk
    assert got == payload
    return (time.perf_counter() - start) * 1000


def _median_rtt_ms(sock, samples=7):
    return statistics.median(_round_trip_ms(sock) for _ in range(samples))


def _assert_added(measured_ms, configured_ms):
    tolerance = max(0.2 * configured_ms, 10.0)
    assert abs(measured_ms - configured_ms) <= tolerance, f"added {measured_ms:.1f} ms; configured {configured_ms} ms ± {tolerance:.0f}"


# -- each toxic's effect ---------------------------------------------------------------------------
def test_latency_adds_what_was_configured_and_removal_restores_existing_connections(proxy, client):
    with _connect(proxy.listen_address("echo")) as sock:
        base = _median_rtt_ms(sock)
        client.add_toxic("echo", "lat", "latency", {"latency": 100})
        _assert_added(_median_rtt_ms(sock) - base, 100)
        client.remove_toxic("echo", "lat")
        client.add_toxic("echo", "lat-up", "latency", {"latency": 40}, stream="upstream")
        client.add_toxic("echo", "lat-down", "latency", {"latency": 40}, stream="downstream")
        _assert_added(_median_rtt_ms(sock) - base, 80)
        client.reset()
        _assert_added(_median_rtt_ms(sock) - base, 0)  # the same connection is fast again


def test_latency_removed_while_a_chunk_waits_releases_it(proxy, client):
    with _connect(proxy.listen_address("echo"), timeout=5) as sock:
        client.add_toxic("echo", "lat", "latency", {"latency": 3000})
        start = time.perf_counter()
        sock.sendall(b"x")
        threading.Timer(0.2, client.remove_toxic, ("echo", "lat")).start()
        assert sock.recv(10) == b"x"
        assert time.perf_counter() - start < 1.5


def test_bandwidth_is_within_20_percent(proxy, client):
    rate_kbps, size = 4000.0, 250_000  # 500 KB/s, so 0.5 s
    client.add_toxic("echo", "bw", "bandwidth", {"rate": rate_kbps / 8})
    with _connect(proxy.listen_address("echo"), timeout=5) as sock:
        sender = threading.Thread(target=sock.sendall, args=(b"b" * size,))
        start = time.perf_counter()
        sender.start()
        got = 0
        while got < size:
            chunk = sock.recv(65536)
            assert chunk
            got += len(chunk)
        elapsed = time.perf_counter() - start
        sender.join()
    measured_kbps = size * 8 / 1000 / elapsed
    assert abs(measured_kbps - rate_kbps) <= 0.2 * rate_kbps, f"{measured_kbps:.0f} kbps; configured {rate_kbps:.0f}"


def test_partition_stalls_existing_and_new_connections_then_heals_intact(proxy, client):
    address = proxy.listen_address("echo")
    existing = _connect(address, timeout=0.5)
    try:
        assert _round_trip_ms(existing) >= 0
        client.add_toxic("echo", "cut", "partition", {})
        existing.sendall(b"held")
        with pytest.raises(socket.timeout):
            existing.recv(10)
        newcomer = _connect(address, timeout=0.5)  # the listener accepts; nothing reaches the upstream
        try:
            newcomer.sendall(b"late")
            with pytest.raises(socket.timeout):
                newcomer.recv(10)
            client.remove_toxic("echo", "cut")
            existing.settimeout(3)
            newcomer.settimeout(3)
            assert existing.recv(10) == b"held"  # nothing was lost
            assert newcomer.recv(10) == b"late"
        finally:
            newcomer.close()
    finally:
        existing.close()


def test_reset_peer_resets_after_the_first_data_as_toxiproxy_does(proxy, client):
    address = proxy.listen_address("echo")
    with _connect(address) as existing, _connect(address) as idle:
        assert _round_trip_ms(existing) >= 0
        client.add_toxic("echo", "rst", "reset_peer", {"timeout": 100}, stream="upstream")
        start = time.perf_counter()
        existing.sendall(b"x")  # the first upstream data arms it: swallowed, then the reset 100 ms later
        with pytest.raises(ConnectionResetError):
            existing.recv(10)
        assert time.perf_counter() - start >= 0.09
        client.remove_toxic("echo", "rst")
        assert _round_trip_ms(idle) >= 0  # it sent nothing while the toxic was there: untouched
    client.add_toxic("echo", "rst", "reset_peer", {"timeout": 0})
    with _connect(address) as newcomer:
        newcomer.sendall(b"x")  # echoed back: the first downstream data resets at once
        with pytest.raises(ConnectionResetError):
            newcomer.recv(10)


def test_down_refuses_new_connections_closes_open_ones_and_comes_back(proxy, client):
    address = proxy.listen_address("echo")
    with _connect(address) as existing:
        client.add_toxic("echo", "off", "down", {})
        assert existing.recv(10) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()
    assert client.routes()["echo"]["enabled"] is True  # the API's switch is the user's; the toxic only holds it down
    client.remove_toxic("echo", "off")
    with _connect(address) as sock:
        assert _round_trip_ms(sock) >= 0


def test_loss_with_probability_one_stalls_or_resets(proxy, client):
    address = proxy.listen_address("echo")
    client.add_toxic("echo", "loss", "loss", {"probability": 1.0})
    with _connect(address, timeout=0.5) as sock:
        sock.sendall(b"lost")
        with pytest.raises(socket.timeout):
            sock.recv(10)
    client.remove_toxic("echo", "loss")
    client.add_toxic("echo", "loss", "loss", {"probability": 1.0, "mode": "reset"})
    with _connect(address) as sock:
        sock.sendall(b"lost")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)


def test_blackhole_swallows_and_removal_closes_what_it_swallowed_from(proxy, client):
    address = proxy.listen_address("echo")
    with _connect(address, timeout=0.5) as sock:
        client.add_toxic("echo", "hole", "timeout", {"timeout": 0}, stream="upstream")
        sock.sendall(b"gone")
        with pytest.raises(socket.timeout):
            sock.recv(10)
        client.remove_toxic("echo", "hole")
        sock.settimeout(3)
        assert sock.recv(10) == b""  # its stream lost data: closed, as Toxiproxy's timeout toxic does
    with _connect(address) as fresh:
        assert _round_trip_ms(fresh, b"back") >= 0


def test_timeout_closes_after_timeout_ms(proxy, client):
    client.add_toxic("echo", "t", "timeout", {"timeout": 150})
    with _connect(proxy.listen_address("echo"), timeout=3) as sock:
        sock.sendall(b"x")
        assert sock.recv(10) == b""


def test_limit_data_slicer_and_slow_close(proxy, client):
    address = proxy.listen_address("echo")
    client.add_toxic("echo", "limit", "limit_data", {"bytes": 10})
    with _connect(address) as sock:
        sock.sendall(b"a" * 30)
        got = b""
        while chunk := sock.recv(100):
            got += chunk
        assert got == b"a" * 10
    client.reset()

    client.add_toxic("echo", "slices", "slicer", {"average_size": 10, "delay": 5000})
    with _connect(address) as sock:
        sock.sendall(bytes(range(100)))
        pieces = []
        while sum(map(len, pieces)) < 100:
            pieces.append(sock.recv(100))
        assert b"".join(pieces) == bytes(range(100))
        assert len(pieces) >= 3
    client.reset()

    client.add_toxic("echo", "slow", "slow_close", {"delay": 300})
    with _connect(address) as sock:
        sock.sendall(b"x")
        assert sock.recv(10) == b"x"
        start = time.perf_counter()
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
        assert time.perf_counter() - start >= 0.25


# -- the proxy as its own process -----------------------------------------------------------------
def test_proxy_as_a_separate_process(echo):
    control, listen = free_port(), free_port()
    command = [sys.executable, "-m", "chaos_events.backends.proxy", "--control", f"127.0.0.1:{control}",
               "--route", f"echo=127.0.0.1:{listen}=127.0.0.1:{echo[1]}"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = []
        while "proxy ready" not in lines:
            line = proc.stdout.readline()
            assert line, f"proxy exited early: {proc.wait(5)} {proc.stderr.read()}"
            lines.append(line.strip())
        assert f"route echo: 127.0.0.1:{listen} -> 127.0.0.1:{echo[1]}" in lines
        client = ProxyClient(f"http://127.0.0.1:{control}")
        with _connect(("127.0.0.1", listen)) as sock:
            base = _median_rtt_ms(sock, 5)
            client.add_toxic("echo", "lat", "latency", {"latency": 50})
            _assert_added(_median_rtt_ms(sock, 5) - base, 50)
            assert client.remove_toxic("echo", "lat") is True
        proc.send_signal(15)
        assert proc.wait(10) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        stop_group(proc)


GEVENT_PROCESS = """
from gevent import monkey; monkey.patch_all()
import json, socket, sys, time
import gevent
from gevent.server import StreamServer
from chaos_events.backends.proxy import ProxyClient, ProxyServer

def echo(sock, address):
    while data := sock.recv(65536):
        sock.sendall(data)

upstream = StreamServer(("127.0.0.1", 0), echo)
upstream.start()
proxy = ProxyServer(["e=127.0.0.1:0=127.0.0.1:%d" % upstream.server_port], control="127.0.0.1:0").start()
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.01) for _ in iter(int, 1)])
ProxyClient(proxy.control_url).add_toxic("e", "lat", "latency", {"latency": 200})
with socket.create_connection(proxy.listen_address("e"), timeout=5) as sock:
    start = time.monotonic()
    sock.sendall(b"x")
    answer = sock.recv(10)
    end = time.monotonic()
threaded = proxy.threaded
ticker.kill()
proxy.stop()
print(json.dumps({"threaded": threaded, "answer": answer.decode(), "waited_s": end - start,
                  "ticks_during_wait": sum(start <= t <= end for t in ticks)}))
"""


def test_in_a_gevent_patched_process_the_proxy_runs_as_greenlets_without_blocking_the_hub():
    proc = subprocess.run([sys.executable, "-c", GEVENT_PROCESS], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["threaded"] is False and result["answer"] == "x"
    assert result["waited_s"] >= 0.15
    assert result["ticks_during_wait"] >= 3  # other greenlets ran while the proxy held the chunk


# -- every network Fault through its revert contract -------------------------------------------------
PARAMS = {
    "latency": {"latency_ms": 50, "jitter_ms": 5, "stream": "both"},
    "bandwidth": {"rate_kbps": 100},
    "slow_close": {"delay_ms": 100},
    "blackhole": {"timeout_ms": 0},
    "reset_peer": {"timeout_ms": 10, "stream": "upstream"},
    "slicer": {"average_size_bytes": 8, "size_variation_bytes": 2, "delay_us": 100},
    "limit_data": {"limit_bytes": "1KB"},
    "down": {},
    "partition": {"toxicity": 0.5},
    "loss": {"probability": 0.5, "mode": "reset"},
}


def _fault(name, control_url, route="echo"):
    cls = fault_type(name)
    params, problems = build_params(cls, PARAMS[name])
    assert problems == []
    target = Target(f"{route}-route", TargetKind.PROXY, {"name": route, "control": control_url})
    assert cls.check_plan(params, target) == [] and cls.preflight(params, target) == []
    return cls(params, target)


def test_every_network_fault_is_registered_with_a_test_here():
    assert sorted(PARAMS) == sorted(cls.type_name for cls in NETWORK_FAULTS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_network_fault_inject_revert_revert_and_revert_only(name, proxy, client):
    saved = []
    fault = _fault(name, proxy.control_url)
    ctx = FaultContext(save_state=lambda: saved.append(list(fault.state.get("toxics", []))), log=lambda text: None)
    fault.inject(ctx)
    names = fault.state["toxics"]
    assert len(names) == (2 if name == "latency" else 1)
    assert saved[-1] == names  # journalled before the proxy was asked
    on_route = {t["name"]: t for t in client.toxics("echo")}
    assert sorted(on_route) == sorted(names)
    assert {t["type"] for t in on_route.values()} == {fault.toxic_type}
    fault.revert(ctx)
    assert client.toxics("echo") == []
    fault.verify_reverted(ctx)
    fault.revert(ctx)
    fault.verify_reverted(ctx)

    never_injected = _fault(name, proxy.control_url)
    never_injected.revert(ctx)
    never_injected.verify_reverted(ctx)
    assert never_injected.state == {}


def test_fault_rebuilt_from_its_journal_reverts(proxy, client):
    fault = _fault("latency", proxy.control_url)
    fault.inject(FaultContext(log=lambda text: None))
    rebuilt = type(fault).from_journal(fault.journal_entry())
    rebuilt.revert(FaultContext())
    assert client.toxics("echo") == []


def test_inject_that_fails_halfway_still_reverts_cleanly(proxy, client):
    fault = _fault("latency", proxy.control_url, route="no-such-route")
    with pytest.raises(InjectionError):
        fault.inject(FaultContext(log=lambda text: None))
    assert len(fault.state["toxics"]) == 1  # recorded before the failed call
    fault.revert(FaultContext())
    fault.verify_reverted(FaultContext())


def test_verify_reverted_sees_a_toxic_left_behind(proxy, client):
    fault = _fault("bandwidth", proxy.control_url)
    fault.inject(FaultContext(log=lambda text: None))
    try:
        with pytest.raises(RevertError) as info:
            fault.verify_reverted(FaultContext())
        assert str(info.value) == f"bandwidth on echo-route: toxics still on route 'echo': {fault.state['toxics'][0]}"
    finally:
        fault.revert(FaultContext())


def test_revert_against_an_unreachable_proxy_raises_revert_error():
    port = free_port()
    fault = _fault("down", f"http://127.0.0.1:{port}")
    fault.state = {"toxics": ["chaos.down.echo-route.downstream.x"], "route": "echo", "control": f"http://127.0.0.1:{port}"}
    with pytest.raises(RevertError) as info:
        fault.revert(FaultContext())
    assert str(info.value) == (f"down on echo-route: could not revert: fault proxy control API at "
                               f"http://127.0.0.1:{port} unreachable (removal of toxic "
                               "'chaos.down.echo-route.downstream.x' from proxy 'echo'): connection refused")


def test_partition_fault_cuts_traffic_until_reverted(proxy):
    fault = _fault("partition", proxy.control_url)
    fault = type(fault)(type(fault.params)(toxicity=1.0), fault.target)
    with _connect(proxy.listen_address("echo"), timeout=0.5) as sock:
        fault.inject(FaultContext(log=lambda text: None))
        try:
            sock.sendall(b"x")
            with pytest.raises(socket.timeout):
                sock.recv(10)
        finally:
            fault.revert(FaultContext())
        sock.settimeout(3)
        assert sock.recv(10) == b"x"


def test_toxic_names_use_the_engine_occurrence_id_made_safe(proxy, client):
    fault = _fault("down", proxy.control_url)
    fault.inject(FaultContext(log=lambda text: None, occurrence_id="f3#2"))
    try:
        assert [t["name"] for t in client.toxics("echo")] == ["chaos.down.echo-route.downstream.f3_2"]
    finally:
        fault.revert(FaultContext())
    assert client.toxics("echo") == []


def test_control_url_comes_from_the_environment_when_the_target_has_none(proxy, client, monkeypatch):
    monkeypatch.setenv("CHAOS_PROXY_CONTROL", proxy.control_url)
    fault = _fault("slow_close", None)
    fault.inject(FaultContext(log=lambda text: None))
    assert fault.state["control"] == proxy.control_url
    assert len(client.toxics("echo")) == 1
    fault.revert(FaultContext())
    assert client.toxics("echo") == []
