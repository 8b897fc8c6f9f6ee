"""Proxy routes declared in a scenario (`listen` + `upstream` on a proxy target): the model, every bad input with the
exact message, the pre-run check of the listen address, how the run's plan is pointed at the started proxy, and the
journal's record of the proxy (kept as a leftover, never a pid that is not the proxy's signalled).
"""
from __future__ import annotations

import socket
import subprocess

import pytest

from chaos_events.errors import PlanError, SafetyError
from chaos_events.run import proxy_part
from chaos_events.run.journal import Journal, check_no_leftovers
from chaos_events.scenario.loader import parse_plan
from chaos_events.scenario.preflight import PreflightOptions, preflight


def _plan(targets: str, faults: str = "faults: []\n"):
    return parse_plan(f"name: t\ntargets:\n{targets}{faults}", "x.yml", environ={})


def problems(targets: str, check_targets: bool = False) -> list[str]:
    with pytest.raises(PlanError) as info:
        plan = _plan(targets)
        if check_targets:
            preflight(plan, PreflightOptions(environ={}))
    return [str(p) for p in info.value.problems]


def test_a_declared_route_and_a_running_proxy_side_by_side():
    plan = _plan('  api: {proxy: {name: api, listen: "127.0.0.1:18000", upstream: "localhost:18001"}}\n'
                 '  kafka: {proxy: {name: kafka, control: "http://127.0.0.1:8474"}}\n'
                 '  tox: {proxy: {name: db, control: "http://127.0.0.1:8475", server: toxiproxy}}\n')
    api, kafka, tox = (plan.targets[n].spec for n in ("api", "kafka", "tox"))
    assert (api.declared, api.listen, api.upstream, api.control) == (True, "127.0.0.1:18000", "localhost:18001", None)
    assert not kafka.declared and not tox.declared and kafka.listen is None
    assert {control: [t.name for t in ts] for control, ts in proxy_part.groups(plan).items()} == {None: ["api"]}


BAD = {
    "listen off loopback": ('  a: {proxy: {name: api, listen: "0.0.0.0:8000", upstream: "127.0.0.1:8001"}}\n', [
        "x.yml:3 targets.a (proxy): 'listen': the harness's proxy listens on loopback only (127.0.0.0/8, ::1, "
        "localhost); got '0.0.0.0:8000'"]),
    "listen without upstream": ('  a: {proxy: {name: api, listen: "127.0.0.1:8000"}}\n', [
        "x.yml:3 targets.a (proxy): missing key 'upstream': a declared route needs both 'listen' and 'upstream' "
        "(the harness then starts its own proxy); got only 'listen'"]),
    "upstream without listen": ('  a: {proxy: {name: api, upstream: "127.0.0.1:8001"}}\n', [
        "x.yml:3 targets.a (proxy): missing key 'listen': a declared route needs both 'listen' and 'upstream' "
        "(the harness then starts its own proxy); got only 'upstream'"]),
    "a bad port": ('  a: {proxy: {name: api, listen: "127.0.0.1:x", upstream: "127.0.0.1:8001"}}\n', [
        "x.yml:3 targets.a (proxy): 'listen': expected host:port with a port from 1 to 65535; got '127.0.0.1:x'"]),
    "declared on a toxiproxy": ('  a: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8001", '
                                'server: toxiproxy}}\n', [
        "x.yml:3 targets.a (proxy): 'listen' and 'upstream' declare a route the harness serves with its own proxy "
        "(server: harness); for a Toxiproxy, create the proxy on it (its -config file or toxiproxy-cli create) and "
        "name it here"]),
    "a control the harness cannot bind": ('  a: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: '
                                          '"127.0.0.1:8001", control: "http://127.0.0.1"}}\n', [
        "x.yml:3 targets.a (proxy): 'control': the harness starts this proxy, so its control API is http:// on "
        "loopback with a port, like http://127.0.0.1:8474; got 'http://127.0.0.1'"]),
    "an upstream not allowed": ('  a: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: "192.0.2.1:80"}}\n', [
        "x.yml:3 targets.a (proxy): 'upstream': host '192.0.2.1' is not allowed; allowed hosts: 127.0.0.1, "
        "localhost, ::1 (add it to settings.allowed_hosts or to --chaos-allow)"]),
    "two routes on one listen address": (
        '  a: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8001"}}\n'
        '  b: {proxy: {name: web, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8002"}}\n', [
            "x.yml:4 targets.b (proxy): 'listen': 127.0.0.1:8000 is already where target 'a' (route 'api') listens; "
            "each declared route needs its own"]),
    "one route name, two upstreams": (
        '  a: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8001"}}\n'
        '  b:\n    proxy:\n      name: api\n      listen: "127.0.0.1:8000"\n      upstream: "127.0.0.1:9001"\n', [
            "x.yml:8 targets.b (proxy): 'upstream': route 'api' is already declared by target 'a' with upstream "
            "127.0.0.1:8001; got 127.0.0.1:9001"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_declared_routes_name_file_line_field_expected_and_got(case):
    targets, expected = BAD[case]
    assert problems(targets) == expected


def test_one_route_named_twice_identically_is_one_route():
    plan = _plan('  a: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8001"}}\n'
                 '  b: {proxy: {name: api, listen: "127.0.0.1:8000", upstream: "127.0.0.1:8001"}}\n')
    assert [t.name for t in proxy_part.groups(plan)[None]] == ["a"]


def test_a_taken_listen_address_is_refused_before_the_run():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert problems(f'  a: {{proxy: {{name: api, listen: "127.0.0.1:{port}", upstream: "127.0.0.1:8001"}}}}\n',
                        check_targets=True) == [
            f"x.yml:3 targets.a (proxy): 'listen': 127.0.0.1:{port} is taken (Address already in use); the harness "
            f"starts its own proxy there. If a proxy already runs there, drop 'listen' and 'upstream' and name its "
            f"'control'"]


def test_the_run_plan_points_the_routes_faults_at_the_started_proxy():
    plan = _plan('  api: {proxy: {name: api, listen: "127.0.0.1:18000", upstream: "127.0.0.1:18001"}}\n'
                 '  same: {proxy: api}\n'
                 '  other: {proxy: {name: kafka, control: "http://127.0.0.1:8474"}}\n')
    started = proxy_part.StartedProxy("proxy:free", "http://127.0.0.1:40001", 4242, None, ("api",))
    run_plan = proxy_part.with_controls(plan, [started])
    assert {n: t.spec.control for n, t in run_plan.targets.items()} == {
        "api": "http://127.0.0.1:40001", "same": "http://127.0.0.1:40001", "other": "http://127.0.0.1:8474"}
    assert plan.targets["api"].spec.control is None  # the scenario's plan is untouched


def test_the_journal_keeps_a_started_proxy_as_a_leftover_until_it_is_stopped(tmp_path):
    path = tmp_path / "journal.json"
    journal = Journal(path, run_id="r1")
    info = {"kind": "proxy", "pid": 4242, "start_time": 1, "description": "the harness's proxy (pid 4242)"}
    journal.add_part("proxy:free", info)
    assert Journal.load(path).parts() == {"proxy:free": info}
    with pytest.raises(SafetyError, match=r"faults not reverted by run r1 .*: the harness's proxy \(pid 4242\); run "):
        check_no_leftovers(path)
    journal.remove_part("proxy:free")
    check_no_leftovers(path)


def test_stopping_from_the_journal_never_signals_a_pid_that_is_not_the_proxy():
    other = subprocess.Popen(["sleep", "30"])
    try:
        start_time = proxy_part._process_start_time(other.pid)
        assert proxy_part.stop_journalled({"pid": other.pid, "start_time": start_time}, print) == ""
        assert other.poll() is None, "a process that is not the proxy was signalled"
    finally:
        other.kill()
        other.wait(5)
    assert proxy_part.stop_journalled({"pid": other.pid, "start_time": start_time}, print) == ""  # gone: nothing to do
    assert proxy_part.stop_journalled({"pid": "x"}, print) == "the journal names no valid pid ('x')"
