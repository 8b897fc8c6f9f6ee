"""The fault proxy's control API (Toxiproxy's HTTP API v2: every endpoint and status code), validation messages (exact
text), toxicity, idempotent removal, the CLI, and the network faults' parameter checks and Toxiproxy mapping.

Real sockets on dynamic ports: an in-process echo upstream and an in-process proxy (greenlets of this gevent-patched
process, as under Locust).
"""
from __future__ import annotations

import json
import socket

import pytest
import requests

from chaos_events.backends.proxy import ProxyClient, ProxyServer, UnknownRouteError, main, parse_route
from chaos_events.backends.proxy.spec import specs_from_json
from chaos_events.backends.toxics import parse_toxic
from chaos_events.errors import InjectionError
from chaos_events.faults.base import build_params, fault_type
from chaos_events.faults.network import TOXICS, check_proxy_target, toxic_attributes
from chaos_events.scenario.loader import parse_plan
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import free_port, running_echo_server

TOXIC_TYPES = "bandwidth, down, latency, limit_data, loss, noop, partition, reset_peer, slicer, slow_close, timeout"


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


def _call(proxy, method, path, body=None, **kwargs):
    return requests.request(method, f"{proxy.control_url}{path}", json=body, timeout=5, **kwargs)


def _echo_once(address, payload=b"ping", timeout=2.0):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(100)


# -- validation (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    ({"type": "latncy"}, f"field 'type': unknown toxic type 'latncy'; expected one of: {TOXIC_TYPES}"),
    ({}, f"field 'type': missing; expected one of: {TOXIC_TYPES}"),
    ({"type": "latency", "attributes": {"latncy": 5, "latency": 5}},
     "field 'attributes' (latency): unknown attribute 'latncy'; expected one of: jitter, latency"),
    ({"type": "latency", "attributes": {"latency_ms": 5}},
     "field 'attributes' (latency): unknown attribute 'latency_ms'; expected one of: jitter, latency"),
    ({"type": "latency", "attributes": {"latency": -5}},
     "field 'attributes.latency' (latency): expected a number of 0 or more; got -5"),
    ({"type": "latency", "attributes": {"latency": "5"}},
     "field 'attributes.latency' (latency): expected a number of 0 or more; got '5'"),
    ({"type": "limit_data", "attributes": {"bytes": 1.5}},
     "field 'attributes.bytes' (limit_data): expected a whole number of 0 or more; got 1.5"),
    ({"type": "slicer", "attributes": {}}, "field 'attributes' (slicer): missing attribute 'average_size'"),
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
    ([1], "request body: expected a JSON object with fields attributes, name, stream, toxicity, type; got an array"),
])
def test_toxic_validation_messages(body, message):
    toxic, problems = parse_toxic(body)
    assert toxic is None
    assert problems == [message]


def test_toxic_defaults_are_toxiproxys():
    toxic, problems = parse_toxic({"type": "latency", "attributes": {"latency": 20}})
    assert problems == []
    assert toxic.to_json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
                               "attributes": {"latency": 20.0, "jitter": 0}}
    toxic, _ = parse_toxic({"type": "bandwidth", "stream": "upstream"})
    assert toxic.to_json()["attributes"] == {"rate": 0} and toxic.rate_bytes_per_s() is None  # 0: no limit, as there


def test_every_problem_is_reported_at_once():
    _, problems = parse_toxic({"type": "bandwidth", "stream": "sideways", "toxicity": -1, "attributes": {"rate_kbps": 5}})
    assert problems == [
        "field 'stream': expected one of: downstream, upstream; got 'sideways'",
        "field 'toxicity': expected a number from 0 to 1; got -1",
        "field 'attributes' (bandwidth): unknown attribute 'rate_kbps'; expected one of: rate",
    ]


@pytest.mark.parametrize("text, message", [
    ("api=127.0.0.1:8000", "route: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT; got 'api=127.0.0.1:8000'"),
    ("api=127.0.0.1=127.0.0.1:1", "route 'api' listen: expected HOST:PORT with a port from 0 to 65535; got '127.0.0.1'"),
    ("api=127.0.0.1:1=127.0.0.1:70000", "route 'api' upstream: expected HOST:PORT with a port from 0 to 65535; got '127.0.0.1:70000'"),
    ("api=127.0.0.1:1=127.0.0.1:0", "route 'api' upstream: expected a port from 1 to 65535; got '127.0.0.1:0'"),
])
def test_route_spec_messages(text, message):
    with pytest.raises(ValueError) as info:
        parse_route(text)
    assert str(info.value) == message


@pytest.mark.parametrize("body, message", [
    ([{"name": "a"}], "missing required field: upstream at proxy 1"),
    ([{"name": "a", "upstream": "127.0.0.1:1"}, {"upstream": "127.0.0.1:2"}], "missing required field: name at proxy 2"),
    ([{"name": "a", "upstream": "127.0.0.1:1", "listn": "x"}],
     "unknown field 'listn'; expected one of: enabled, listen, name, toxics, upstream at proxy 1"),
    ([{"name": "a", "upstream": "127.0.0.1:1", "enabled": "yes"}], "field 'enabled': expected true or false; got 'yes' at proxy 1"),
    ([{"name": "a", "upstream": "1"}], "field 'upstream' at proxy 1: expected HOST:PORT with a port from 0 to 65535; got '1'"),
    ([{"name": "a", "upstream": "h:1"}, {"name": "a", "upstream": "h:2"}], "proxy names must be unique; repeated: a"),
    ({"name": "a"}, 'expected a JSON array of proxies like [{"name": "api", "listen": "127.0.0.1:8000", '
                    '"upstream": "127.0.0.1:8001"}]; got {"name": "a"}'),
])
def test_proxy_list_messages(body, message):
    with pytest.raises(ValueError) as info:
        specs_from_json(body)
    assert str(info.value) == message


# -- the control API: every endpoint and status code ------------------------------------------------
def test_version_and_proxy_lifecycle_endpoints(proxy, echo):
    assert _call(proxy, "GET", "/version").json() == {"version": "0.1.0", "server": "chaos-events"}
    body = {"name": "made", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo[1]}"}
    created = _call(proxy, "POST", "/proxies", body)
    assert created.status_code == 201
    made = created.json()
    host, port = made["listen"].split(":")
    assert made == {"name": "made", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{echo[1]}", "enabled": True, "toxics": []}
    assert _echo_once((host, int(port))) == b"ping"
    assert (_call(proxy, "POST", "/proxies", body).status_code, _call(proxy, "POST", "/proxies", body).json()) == \
        (409, {"error": "proxy already exists", "status": 409})
    assert sorted(_call(proxy, "GET", "/proxies").json()) == ["echo", "made"]
    assert _call(proxy, "GET", "/proxies/made").json() == made

    disabled = _call(proxy, "POST", "/proxies/made", {"enabled": False})
    assert (disabled.status_code, disabled.json()["enabled"]) == (200, False)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2)
    assert _call(proxy, "PATCH", "/proxies/made", {"enabled": True}).json() == made  # same port again
    assert _echo_once((host, int(port))) == b"ping"

    assert _call(proxy, "DELETE", "/proxies/made").status_code == 204
    for method in ("GET", "DELETE", "POST"):
        missing = _call(proxy, method, "/proxies/made", {"enabled": True})
        assert (missing.status_code, missing.json()) == (404, {"error": "proxy not found", "status": 404})


@pytest.mark.parametrize("body, status, error", [
    ({"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
    ({"name": "x", "listen": "127.0.0.1:0"}, 400, "missing required field: upstream"),
    ({"name": "x", "upstream": "nowhere"}, 400, "bad request body: field 'upstream': expected HOST:PORT with a port from 0 to 65535; got 'nowhere'"),
    ([], 400, "bad request body: expected a JSON object with fields enabled, listen, name, toxics, upstream; got []"),
])
def test_create_refusals(proxy, body, status, error):
    response = _call(proxy, "POST", "/proxies", body)
    assert (response.status_code, response.json()) == (status, {"error": error, "status": status})


def test_create_on_a_taken_port_is_500_and_adds_nothing(proxy):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        response = _call(proxy, "POST", "/proxies", {"name": "x", "listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:1"})
    assert response.status_code == 500
    assert response.json()["error"] == f"route 'x': cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "x" not in _call(proxy, "GET", "/proxies").json()


def test_populate_creates_keeps_and_refuses(proxy, echo):
    upstream = f"127.0.0.1:{echo[1]}"
    response = _call(proxy, "POST", "/populate", [{"name": "p1", "listen": "127.0.0.1:0", "upstream": upstream},
                                                  {"name": "p2", "listen": "127.0.0.1:0", "upstream": upstream, "enabled": False}])
    assert response.status_code == 201
    proxies = response.json()["proxies"]
    assert [(p["name"], p["enabled"]) for p in proxies] == [("p1", True), ("p2", False)]
    again = _call(proxy, "POST", "/populate", [{"name": "p1", "listen": proxies[0]["listen"], "upstream": upstream}])
    assert again.json()["proxies"] == [proxies[0]]  # the same proxy is kept as it is
    bad = _call(proxy, "POST", "/populate", [{"name": "p3"}])
    assert (bad.status_code, bad.json()) == (400, {"error": "missing required field: upstream at proxy 1", "status": 400, "proxies": []})


def test_toxic_endpoints(proxy):
    base = "/proxies/echo/toxics"
    added = _call(proxy, "POST", base, {"name": "slow", "type": "latency", "stream": "upstream", "attributes": {"latency": 5}})
    assert (added.status_code, added.json()) == (200, {"name": "slow", "type": "latency", "stream": "upstream", "toxicity": 1.0,
                                                       "attributes": {"latency": 5.0, "jitter": 0}})
    duplicate = _call(proxy, "POST", base, {"name": "slow", "type": "noop"})
    assert (duplicate.status_code, duplicate.json()) == (409, {"error": "toxic already exists", "status": 409})
    assert _call(proxy, "GET", base).json() == [added.json()]
    assert _call(proxy, "GET", f"{base}/slow").json() == added.json()
    updated = _call(proxy, "PATCH", f"{base}/slow", {"attributes": {"jitter": 2}, "toxicity": 0.5})
    assert updated.json()["attributes"] == {"latency": 5.0, "jitter": 2.0} and updated.json()["toxicity"] == 0.5
    assert _call(proxy, "POST", f"{base}/slow", {"attributes": {"latency": 7}}).json()["attributes"] == {"latency": 7.0, "jitter": 2.0}
    refused = _call(proxy, "POST", f"{base}/slow", {"attributes": {"latncy": 7}, "stream": "downstream"})
    assert refused.status_code == 400
    assert refused.json()["problems"] == [
        "field 'stream': a toxic's stream cannot be changed (it is 'upstream'); got 'downstream'",
        "field 'attributes' (latency): unknown attribute 'latncy'; expected one of: jitter, latency"]
    assert _call(proxy, "DELETE", f"{base}/slow").status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = _call(proxy, method, f"{base}/slow", {"attributes": {}})
        assert (gone.status_code, gone.json()) == (404, {"error": "toxic not found", "status": 404})
    nope = _call(proxy, "POST", "/proxies/nope/toxics", {"type": "noop"})
    assert (nope.status_code, nope.json()) == (404, {"error": "proxy not found", "status": 404})


def test_a_typo_is_a_400_listing_the_allowed_attributes(proxy):
    response = _call(proxy, "POST", "/proxies/echo/toxics", {"name": "t", "type": "latency", "attributes": {"latncy": 100}})
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad request body: field 'attributes' (latency): unknown attribute 'latncy'; expected one of: jitter, latency",
        "status": 400,
        "problems": ["field 'attributes' (latency): unknown attribute 'latncy'; expected one of: jitter, latency"]}
    assert ProxyClient(proxy.control_url).toxics("echo") == []


def test_reset_enables_every_proxy_and_removes_every_toxic(proxy, echo):
    client = ProxyClient(proxy.control_url)
    client.add_toxic("echo", "cut", "bandwidth", {"rate": 100})
    client.set_enabled("echo", False)
    assert _call(proxy, "POST", "/reset").status_code == 204
    assert client.route("echo")["enabled"] is True and client.toxics("echo") == []
    assert _echo_once(proxy.listen_address("echo")) == b"ping"


def test_bad_json_methods_paths_and_browsers(proxy):
    response = requests.post(f"{proxy.control_url}/proxies/echo/toxics", data=b"{nope", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: invalid JSON (")
    response = _call(proxy, "PUT", "/proxies/echo/toxics", {})
    assert (response.status_code, response.headers["Allow"]) == (405, "GET, POST")
    assert response.json() == {"error": "method PUT not allowed here; allowed: GET, POST", "status": 405}
    assert _call(proxy, "DELETE", "/reset").status_code == 405
    response = _call(proxy, "GET", "/nothing")
    assert (response.status_code, response.json()) == (404, {"error": "not found: GET /nothing", "status": 404})
    browser = _call(proxy, "POST", "/reset", headers={"User-Agent": "Mozilla/5.0"})
    assert (browser.status_code, browser.json()) == (403, {"error": "User agent not allowed", "status": 403})


# -- the harness's client ---------------------------------------------------------------------------
def test_client_errors_are_injection_errors_with_plain_text(proxy):
    client = ProxyClient(proxy.control_url)
    with pytest.raises(InjectionError) as info:
        client.add_toxic("echo", "x", "latency", {"latency": 1}, stream="both")
    assert str(info.value) == (f"fault proxy at {proxy.control_url} refused toxic 'x' (latency) on proxy 'echo': "
                               "HTTP 400: bad request body: field 'stream': expected one of: downstream, upstream; got 'both'")
    with pytest.raises(UnknownRouteError) as info:
        client.toxics("nope")
    assert str(info.value) == (f"fault proxy at {proxy.control_url} refused list toxics of proxy 'nope': "
                               "HTTP 404: proxy not found")
    port = free_port()
    with pytest.raises(InjectionError) as info:
        ProxyClient(f"http://127.0.0.1:{port}", timeout_s=1).routes()
    assert str(info.value) == f"fault proxy control API at http://127.0.0.1:{port} unreachable (list proxies): connection refused"


def test_remove_toxic_is_idempotent(proxy):
    client = ProxyClient(proxy.control_url)
    client.add_toxic("echo", "gone", "timeout", {"timeout": 0})
    assert client.remove_toxic("echo", "gone") is True
    assert client.remove_toxic("echo", "gone") is False
    assert client.remove_toxic("no-such-route", "gone") is False
    assert client.toxics("echo") == []


def test_toxicity_zero_spares_connections_and_one_hits_them(proxy):
    client = ProxyClient(proxy.control_url)
    address = proxy.listen_address("echo")
    client.add_toxic("echo", "rst", "reset_peer", {"timeout": 0}, toxicity=0.0)
    assert [_echo_once(address) for _ in range(5)] == [b"ping"] * 5
    client.remove_toxic("echo", "rst")
    client.add_toxic("echo", "rst", "reset_peer", {"timeout": 0}, toxicity=1.0)
    for _ in range(3):
        with pytest.raises(ConnectionResetError):
            _echo_once(address)


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--route", "api=127.0.0.1:8000"], "error: route: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT; got 'api=127.0.0.1:8000'"),
    (["--route", "a=127.0.0.1:0=127.0.0.1:1", "--control", "nowhere"],
     "error: --control: expected HOST:PORT with a port from 0 to 65535; got 'nowhere'"),
    (["--control", "127.0.0.1:0", "-port", "1"], "error: give either --control HOST:PORT or -host/-port, not both"),
    (["-host", "127.0.0.1", "-port", "x"], "error: -host/-port: expected HOST:PORT with a port from 0 to 65535; got '127.0.0.1:x'"),
    (["--route", "a=127.0.0.1:0=127.0.0.1:1", "--route", "a=127.0.0.1:0=127.0.0.1:2"],
     "proxy: route names must be unique; repeated: a"),
    (["-config", "/nonexistent/p.json"], "error: -config /nonexistent/p.json: cannot read: No such file or directory"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
])
def test_cli_bad_arguments_exit_2_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_bad_config_file_names_file_and_field(tmp_path, capsys):
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "api", "listen": "127.0.0.1:0"}]))
    assert main(["-config", str(config)]) == 2
    assert f"error: -config {config}: missing required field: upstream at proxy 1" in capsys.readouterr().err


def test_cli_taken_port_names_route_and_port(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--control", "127.0.0.1:0", "--route", f"api=127.0.0.1:{port}=127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == f"proxy: route 'api': cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_cli_help_names_the_command_it_was_started_as(capsys):
    from chaos_events.cli import main as chaos_events_main

    assert chaos_events_main(["proxy", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: chaos-events proxy ") and "-config" in out and "-host" in out


# -- network faults: parameters, the one table, and a real Toxiproxy's limits ------------------------
TARGET = Target("api-route", TargetKind.PROXY, {"name": "api"})


def _toxiproxy_target(control="http://127.0.0.1:1", route="api"):
    return Target("api-route", TargetKind.PROXY, {"name": route, "control": control, "server": "toxiproxy"})


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


@pytest.mark.parametrize("name, raw, toxic_type, attributes", [
    ("latency", {"latency_ms": 200, "jitter_ms": 20}, "latency", {"latency": 200, "jitter": 20}),
    ("bandwidth", {"rate_kbps": 800}, "bandwidth", {"rate": 100}),
    ("bandwidth", {"rate_kbps": 4}, "bandwidth", {"rate": 0.5}),
    ("slow_close", {"delay_ms": "1s"}, "slow_close", {"delay": 1000}),
    ("blackhole", {"timeout_ms": 50}, "timeout", {"timeout": 50}),
    ("reset_peer", {}, "reset_peer", {"timeout": 0}),
    ("slicer", {"average_size_bytes": 10, "size_variation_bytes": 2, "delay_us": 300}, "slicer",
     {"average_size": 10, "size_variation": 2, "delay": 300}),
    ("limit_data", {"limit_bytes": "1KB"}, "limit_data", {"bytes": 1000}),
    ("down", {}, "down", {}),
    ("partition", {}, "partition", {}),
    ("loss", {"probability": 0.5}, "loss", {"probability": 0.5, "mode": "stall"}),
])
def test_the_table_maps_each_fault_to_the_proxys_toxic(name, raw, toxic_type, attributes):
    params, problems = build_params(fault_type(name), raw)
    assert problems == []
    assert (TOXICS[name].toxic_type, toxic_attributes(TOXICS[name], params)) == (toxic_type, attributes)
    toxic, problems = parse_toxic({"type": toxic_type, "attributes": attributes})
    assert problems == []  # what the harness sends, the harness's proxy takes


@pytest.mark.parametrize("name, raw, message", [
    ("partition", {}, "target 'api-route' is a real Toxiproxy (server: toxiproxy), which has no 'partition' toxic; "
                      "this fault needs the harness's own proxy (server: harness)"),
    ("loss", {"probability": 0.1}, "target 'api-route' is a real Toxiproxy (server: toxiproxy), which has no 'loss' toxic; "
                                   "this fault needs the harness's own proxy (server: harness)"),
    ("down", {"toxicity": 0.5}, "parameter 'toxicity': target 'api-route' is a real Toxiproxy (server: toxiproxy), which "
                                "takes a proxy down whole (enabled: false); expected 1; got 0.5"),
    ("bandwidth", {"rate_kbps": 100}, "parameter 'rate_kbps': target 'api-route' is a real Toxiproxy (server: toxiproxy), "
                                      "which takes a whole number of KB/s for bandwidth 'rate'; got 100, which is 12.5 KB/s "
                                      "(use a multiple of 8)"),
    ("latency", {"latency_ms": 1.5}, "parameter 'latency_ms': target 'api-route' is a real Toxiproxy (server: toxiproxy), "
                                     "which takes a whole number of ms for latency 'latency'; got 1.5, which is 1.5 ms"),
])
def test_what_a_real_toxiproxy_cannot_do_is_refused_before_the_run(name, raw, message):
    cls = fault_type(name)
    params, _ = build_params(cls, raw)
    assert cls.check_plan(params, _toxiproxy_target()) == [message]


def test_a_toxiproxy_that_is_not_there_or_lacks_the_proxy_is_refused(proxy):
    port = free_port()
    params, _ = build_params(fault_type("latency"), {"latency_ms": 10})
    assert fault_type("latency").preflight(params, _toxiproxy_target(f"http://127.0.0.1:{port}")) == [
        f"target 'api-route': fault proxy control API at http://127.0.0.1:{port} unreachable (show proxy 'api'): connection refused"]
    assert check_proxy_target(_toxiproxy_target(proxy.control_url)) == [
        f"target 'api-route': the proxy at {proxy.control_url} has no proxy 'api'; proxies: echo"]
    assert fault_type("latency").preflight(params, _toxiproxy_target(proxy.control_url, route="echo")) == []


def test_the_loader_takes_a_proxy_server_key():
    text = ("name: s\ntargets:\n  a: {proxy: {name: api, control: 'http://127.0.0.1:8474', server: toxiproxy}}\n"
            "  b: {proxy: {name: api, server: harness}}\n  c: {proxy: kafka}\n")
    plan = parse_plan(text, "s.yml")
    assert [plan.targets[n].spec.model_dump() for n in "abc"] == [
        {"route": "api", "control": "http://127.0.0.1:8474", "server": "toxiproxy", "listen": None, "upstream": None},
        {"route": "api", "control": None, "server": "harness", "listen": None, "upstream": None},
        {"route": "kafka", "control": None, "server": "harness", "listen": None, "upstream": None}]
    from chaos_events.errors import PlanError

    with pytest.raises(PlanError) as info:
        parse_plan("name: s\ntargets:\n  a: {proxy: {name: api, server: envoy}}\n", "s.yml")
    assert [str(p) for p in info.value.problems] == [
        "s.yml:3 targets.a (proxy): 'server': unknown value 'envoy'; expected one of: harness, toxiproxy"]
