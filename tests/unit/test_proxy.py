"""The fault proxy's control API, validation messages (exact text), toxicity, idempotent removal and CLI errors.

Real sockets on dynamic ports: an in-process echo upstream and an in-process proxy (its own hub in one thread).
"""
from __future__ import annotations

import socket

import pytest
import requests

from chaos_events.backends.proxy import ProxyClient, ProxyServer, UnknownRouteError, main, parse_route
from chaos_events.backends.toxics import parse_toxic
from chaos_events.errors import InjectionError
from chaos_events.faults.base import build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import free_port, running_echo_server

TOXIC_TYPES = "bandwidth, down, latency, limit_data, loss, partition, reset_peer, slicer, slow_close, timeout"


@pytest.fixture(scope="module")
def echo():
    with running_echo_server() as address:
        yield address


@pytest.fixture
def proxy(echo):
    server = ProxyServer([f"echo=127.0.0.1:0=127.0.0.1:{echo[1]}"], control="127.0.0.1:0", seed=1).start()
    try:
        yield server
    finally:
        server.stop()


def _post(proxy, body, route="echo"):
    return requests.post(f"{proxy.control_url}/proxies/{route}/toxics", json=body, timeout=5)


def _echo_once(address, payload=b"ping", timeout=2.0):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(100)


# -- validation (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    ({"type": "latncy"}, f"field 'type': unknown toxic type 'latncy'; expected one of: {TOXIC_TYPES}"),
    ({}, f"field 'type': missing; expected one of: {TOXIC_TYPES}"),
    ({"type": "latency", "attributes": {"latncy_ms": 5, "latency_ms": 5}},
     "field 'attributes' (latency): unknown attribute 'latncy_ms'; expected one of: jitter_ms, latency_ms"),
    ({"type": "latency"}, "field 'attributes' (latency): missing attribute 'latency_ms'"),
    ({"type": "latency", "attributes": {"latency_ms": -5}},
     "field 'attributes.latency_ms' (latency): expected a number of 0 or more; got -5"),
    ({"type": "latency", "attributes": {"latency_ms": "5"}},
     "field 'attributes.latency_ms' (latency): expected a number of 0 or more; got '5'"),
    ({"type": "limit_data", "attributes": {"bytes": 1.5}},
     "field 'attributes.bytes' (limit_data): expected a whole number of 0 or more; got 1.5"),
    ({"type": "loss", "attributes": {"probability": 1, "mode": "drop"}},
     "field 'attributes.mode' (loss): expected one of: reset, stall; got 'drop'"),
    ({"type": "loss", "attributes": {"probability": 2}},
     "field 'attributes.probability' (loss): expected a number from 0 to 1; got 2"),
    ({"type": "down", "attributes": {"x": 1}}, "field 'attributes' (down): unknown attribute 'x'; expected one of: (none)"),
    ({"type": "slicer", "attributes": {"average_size": 4, "size_variation": 4}},
     "field 'attributes.size_variation' (slicer): expected less than average_size (4); got 4"),
    ({"type": "down", "stream": "both"}, "field 'stream': expected one of: downstream, upstream; got 'both'"),
    ({"type": "down", "toxicity": 1.5}, "field 'toxicity': expected a number from 0 to 1; got 1.5"),
    ({"type": "down", "toxicity": True}, "field 'toxicity': expected a number from 0 to 1; got True"),
    ({"type": "down", "name": "a b"},
     "field 'name': expected 1 to 200 characters of letters, digits, '_', '.', ':' or '-'; got 'a b'"),
    ({"type": "down", "typ": "x"}, "unknown field 'typ'; expected one of: attributes, name, stream, toxicity, type"),
    ([1], "request body: expected a JSON object with fields attributes, name, stream, toxicity, type; got list"),
])
def test_toxic_validation_messages(body, message):
    toxic, problems = parse_toxic(body)
    assert toxic is None
    assert problems == [message]


def test_toxic_defaults_are_filled_in():
    toxic, problems = parse_toxic({"type": "latency", "attributes": {"latency_ms": 20}})
    assert problems == []
    assert toxic.to_json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
                               "attributes": {"latency_ms": 20.0, "jitter_ms": 0.0}}


def test_every_problem_is_reported_at_once():
    _, problems = parse_toxic({"type": "bandwidth", "stream": "sideways", "toxicity": -1, "attributes": {"rate": 5}})
    assert problems == [
        "field 'stream': expected one of: downstream, upstream; got 'sideways'",
        "field 'toxicity': expected a number from 0 to 1; got -1",
        "field 'attributes' (bandwidth): unknown attribute 'rate'; expected one of: rate_kbps",
        "field 'attributes' (bandwidth): missing attribute 'rate_kbps'",
    ]


@pytest.mark.parametrize("text, message", [
    ("api=127.0.0.1:8000", "route: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT; got 'api=127.0.0.1:8000'"),
    ("api=127.0.0.1=127.0.0.1:1", "route 'api' listen: expected HOST:PORT with a port from 0 to 65535; got '127.0.0.1'"),
    ("api=127.0.0.1:1=127.0.0.1:70000", "route 'api' upstream: expected HOST:PORT with a port from 0 to 65535; got '127.0.0.1:70000'"),
])
def test_route_spec_messages(text, message):
    with pytest.raises(ValueError) as info:
        parse_route(text)
    assert str(info.value) == message


# -- control API over HTTP -------------------------------------------------------------------------
def test_control_api_refuses_a_typo_with_400_and_the_allowed_values(proxy):
    response = _post(proxy, {"name": "t", "type": "latency", "attributes": {"latncy": 100}})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == (
        "field 'attributes' (latency): unknown attribute 'latncy'; expected one of: jitter_ms, latency_ms\n"
        "field 'attributes' (latency): missing attribute 'latency_ms'")
    assert body["status"] == 400
    assert ProxyClient(proxy.control_url).toxics("echo") == []


def test_control_api_invalid_json_unknown_route_conflict_and_method(proxy):
    response = requests.post(f"{proxy.control_url}/proxies/echo/toxics", data=b"{nope", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body: invalid JSON (")

    response = _post(proxy, {"type": "down"}, route="ech")
    assert response.status_code == 404
    assert response.json()["error"] == "no route 'ech'; routes: echo"

    assert _post(proxy, {"name": "d", "type": "down", "toxicity": 0}).status_code == 200
    response = _post(proxy, {"name": "d", "type": "down", "toxicity": 0})
    assert response.status_code == 409
    assert response.json()["error"] == "route 'echo' already has a toxic named 'd'"

    response = requests.put(f"{proxy.control_url}/proxies/echo/toxics", json={}, timeout=5)
    assert response.status_code == 405
    assert response.json()["error"] == "method PUT not allowed here; allowed: GET, POST"

    response = requests.get(f"{proxy.control_url}/nothing", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"].startswith("no endpoint GET /nothing; endpoints: GET /proxies, ")


def test_routes_toxics_and_reset(proxy, echo):
    # A plain process gets its own hub in a thread; a gevent-patched one (as under Locust, and this suite) greenlets.
    from gevent import monkey

    assert proxy.threaded is not monkey.is_module_patched("socket")
    client = ProxyClient(proxy.control_url)
    stored = client.add_toxic("echo", "slow", "latency", {"latency_ms": 5}, stream="upstream", toxicity=0.5)
    assert stored == {"name": "slow", "type": "latency", "stream": "upstream", "toxicity": 0.5,
                      "attributes": {"latency_ms": 5.0, "jitter_ms": 0.0}}
    client.add_toxic("echo", "cut", "bandwidth", {"rate_kbps": 100000})
    routes = client.routes()
    host, port = proxy.listen_address("echo")
    assert routes["echo"]["listen"] == f"{host}:{port}"
    assert routes["echo"]["upstream"] == f"127.0.0.1:{echo[1]}"
    assert [t["name"] for t in routes["echo"]["toxics"]] == ["slow", "cut"]
    assert [t["name"] for t in client.toxics("echo")] == ["slow", "cut"]
    client.reset()
    assert client.toxics("echo") == []


def test_client_errors_are_injection_errors_with_plain_text(proxy):
    client = ProxyClient(proxy.control_url)
    with pytest.raises(InjectionError) as info:
        client.add_toxic("echo", "x", "latency", {"latency_ms": 1}, stream="both")
    assert str(info.value) == (f"fault proxy at {proxy.control_url} refused toxic 'x' (latency) on route 'echo': "
                               "HTTP 400: field 'stream': expected one of: downstream, upstream; got 'both'")
    with pytest.raises(UnknownRouteError) as info:
        client.toxics("nope")
    assert str(info.value) == (f"fault proxy at {proxy.control_url} refused list toxics of route 'nope': "
                               "HTTP 404: no route 'nope'; routes: echo")
    port = free_port()
    with pytest.raises(InjectionError) as info:
        ProxyClient(f"http://127.0.0.1:{port}", timeout_s=1).routes()
    assert str(info.value) == f"fault proxy control API at http://127.0.0.1:{port} unreachable (list routes): connection refused"


def test_remove_toxic_is_idempotent(proxy):
    client = ProxyClient(proxy.control_url)
    client.add_toxic("echo", "gone", "timeout", {"timeout_ms": 0})
    assert client.remove_toxic("echo", "gone") is True
    assert client.remove_toxic("echo", "gone") is False
    assert client.remove_toxic("no-such-route", "gone") is False
    assert client.toxics("echo") == []


def test_toxicity_zero_spares_connections_and_one_hits_them(proxy):
    client = ProxyClient(proxy.control_url)
    address = proxy.listen_address("echo")
    client.add_toxic("echo", "rst", "reset_peer", {"timeout_ms": 0}, toxicity=0.0)
    assert [_echo_once(address) for _ in range(5)] == [b"ping"] * 5
    client.remove_toxic("echo", "rst")
    client.add_toxic("echo", "rst", "reset_peer", {"timeout_ms": 0}, toxicity=1.0)
    for _ in range(3):
        with pytest.raises(ConnectionResetError):
            _echo_once(address)


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--control", "127.0.0.1:1"], "error: at least one --route NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT is required"),
    (["--route", "api=127.0.0.1:8000"], "error: route: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT; got 'api=127.0.0.1:8000'"),
    (["--route", "a=127.0.0.1:0=127.0.0.1:1", "--control", "nowhere"],
     "error: --control: expected HOST:PORT with a port from 0 to 65535; got 'nowhere'"),
    (["--route", "a=127.0.0.1:0=127.0.0.1:1", "--route", "a=127.0.0.1:0=127.0.0.1:2"],
     "proxy: route names must be unique; repeated: a"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
])
def test_cli_bad_arguments_exit_2_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_taken_port_names_route_and_port(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--control", "127.0.0.1:0", "--route", f"api=127.0.0.1:{port}=127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == f"proxy: route 'api': cannot listen on 127.0.0.1:{port}: Address already in use\n"


# -- network fault parameters ----------------------------------------------------------------------
TARGET = Target("api-route", TargetKind.PROXY, {"name": "api"})


@pytest.mark.parametrize("name, raw, messages", [
    ("latency", {"latency_ms": 10, "stream": "sideways"},
     ["parameter 'stream': unknown value 'sideways'; expected one of: both, downstream, upstream"]),
    ("bandwidth", {"rate_kbps": 0, "toxicity": 1.5},
     ["parameter 'rate_kbps': must be more than zero; got 0", "parameter 'toxicity': must be between 0 and 1; got 1.5"]),
    ("blackhole", {"timeout_ms": -1}, ["parameter 'timeout_ms': must not be negative; got -1"]),
    ("loss", {"probability": 1.2, "mode": "drop"},
     ["parameter 'probability': must be between 0 and 1; got 1.2",
      "parameter 'mode': unknown value 'drop'; expected one of: reset, stall"]),
    ("slicer", {"average_size_bytes": 4, "size_variation_bytes": 9},
     ["parameter 'size_variation_bytes': expected less than average_size_bytes (4); got 9"]),
    ("partition", {}, []),
])
def test_network_fault_parameter_messages(name, raw, messages):
    _, problems = build_params(fault_type(name), raw)
    assert problems == messages


def test_network_fault_unknown_parameter_is_an_error():
    _, problems = build_params(fault_type("latency"), {"latncy_ms": 10})
    assert problems == ["unknown parameter 'latncy_ms'; expected one of: jitter_ms, latency_ms, stream, toxicity",
                        "missing parameter 'latency_ms'"]
    _, problems = build_params(fault_type("partition"), {"stream": "both"})
    assert problems == ["unknown parameter 'stream'; expected one of: toxicity"]
