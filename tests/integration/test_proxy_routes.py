"""Proxy routes declared in the scenario: the harness starts its own proxy for them before the load, its faults reach
it, and it is stopped at the end, or by `chaos-events revert` after a SIGKILL of the run. And a Toxiproxy target
that does not answer fails before any load with exit 2.

Each test uses test_revert_always.Scene: a stdlib HTTP server on a free loopback port (the route's upstream), and a
Locust subprocess whose --host is the route's listen address. Every process is ended by pid, even on failure.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from chaos_events.backends.process import wait_until as poll
from chaos_events.errors import ExitCode
from tests.helpers import VENV_BIN, free_port

ROUTE_SCENARIO = """
name: declared-route
targets:
  api: {proxy: {name: api, listen: "127.0.0.1:@LISTEN@", upstream: "127.0.0.1:@UPSTREAM@"}}
faults:
  - {at: 3s, for: @FOR@, fault: latency, target: api, params: {latency_ms: 300}}
slos:
  - {name: few-errors, metric: error_rate, max: 0.5}
settings: {recovery_window: 2s}
"""


def _route_scene(scene, fault_for: str) -> int:
    listen = free_port()
    scene.write_scenario(ROUTE_SCENARIO.replace("@LISTEN@", str(listen)).replace("@UPSTREAM@", str(scene.port))
                         .replace("@FOR@", fault_for))
    scene.host = f"http://127.0.0.1:{listen}"
    return listen


def _events(scene) -> list[dict]:
    path = scene.reports / "chaos-events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _proxy_pids(scene) -> list[int]:
    return [e["pid"] for e in _events(scene) if e.get("kind") == "proxy_started"]


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _kill_leftover(pids: list[int]) -> None:
    for pid in pids:  # only the proxies our Locust started, named by its own event stream
        if _alive(pid) and b"chaos_events.backends.proxy" in open(f"/proc/{pid}/cmdline", "rb").read():
            os.kill(pid, signal.SIGKILL)


def _phase_p50_ms(report: dict, phase: str) -> float:
    stats = report["phase_stats"]
    assert phase in stats and stats[phase]["requests"], f"no requests in the {phase} phase: {stats}"
    return stats[phase]["p50_ms"]


def test_a_declared_route_is_served_by_the_harness_proxy_and_stopped_at_the_end(scene):
    _route_scene(scene, "4s")
    run = scene.run(scene.args("10s"))
    pids = _proxy_pids(scene)
    try:
        assert run.returncode == ExitCode.OK, run.output[-4000:]
        assert len(pids) == 1, f"proxy_started events: {pids}\n{run.output[-3000:]}"
        assert not _alive(pids[0]), f"the proxy (pid {pids[0]}) still runs after the run"
        assert "started the harness's proxy at http://127.0.0.1:" in run.output
        kinds = [e["kind"] for e in _events(scene)]
        assert kinds.index("proxy_started") < kinds.index("injected") < kinds.index("reverted") \
            < kinds.index("proxy_stopped"), kinds
        assert [e["pids"] for e in _events(scene) if e["kind"] == "proxy_stopped"] == [pids]
        report = scene.report()
        assert report["verdict"]["exit_code"] == ExitCode.OK
        fault, baseline = _phase_p50_ms(report, "fault"), _phase_p50_ms(report, "baseline")
        assert fault >= baseline + 250, f"median {fault:.0f} ms in the fault phase, {baseline:.0f} ms before it"
        assert scene.journal_data()["entries"] == {} and not scene.journal_data().get("parts")
    finally:
        _kill_leftover(pids)


def test_revert_after_a_sigkill_stops_the_harness_proxy(scene):
    pids: list[int] = []
    try:
        proc = _start_mid_fault(scene, pids, "--chaos-no-watchdog")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _alive(pids[0]), "the proxy died with Locust: nothing left for revert to prove"
        assert list(scene.journal_data()["parts"]) == ["proxy:free"]
        done = subprocess.run([str(VENV_BIN / "chaos-events"), "revert", "--journal", str(scene.journal)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == ExitCode.OK, done.stdout + done.stderr
        assert "reverted f0#1" in done.stdout and "stopped proxy:free" in done.stdout, done.stdout
        assert done.stdout.splitlines()[-1] == "reverted 1 fault, stopped 1 part the run started", done.stdout
        assert poll(lambda: not _alive(pids[0]), 10), f"the proxy (pid {pids[0]}) still runs after revert"
        assert scene.journal_data()["entries"] == {} and scene.journal_data()["parts"] == {}
    finally:
        _kill_leftover(pids)


def _start_mid_fault(scene, pids: list[int], *extra: str) -> subprocess.Popen:
    """Locust in the background through a declared route, returned once the latency fault is injected; the proxy's
    pid goes into `pids` first, so the caller's cleanup ends it whatever fails here."""
    _route_scene(scene, "60s")
    proc = scene.start(scene.args("60s", *extra))
    injected = poll(lambda: bool(scene.journal_entries()) or proc.poll() is not None, 30)
    pids.extend(_proxy_pids(scene))
    assert injected and proc.poll() is None, f"no fault injected, or locust exited early\n{scene.output()[-4000:]}"
    assert len(pids) == 1 and _alive(pids[0]), f"proxy pids {pids}\n{scene.output()[-3000:]}"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signalled_run_reverts_then_stops_the_harness_proxy(scene, signum):
    pids: list[int] = []
    try:
        proc = _start_mid_fault(scene, pids)
        os.kill(proc.pid, signum)
        scene.wait_exit(proc)
        assert "stopped the harness's proxy" in scene.output(), scene.output()[-4000:]
        assert "REVERT FAILED" not in scene.output(), scene.output()[-4000:]
        assert not _alive(pids[0]), f"the proxy (pid {pids[0]}) still runs after the run"
        assert scene.journal_data()["entries"] == {} and not scene.journal_data().get("parts")
    finally:
        _kill_leftover(pids)


def test_the_watchdog_stops_the_harness_proxy_after_a_sigkill(scene):
    pids: list[int] = []
    try:
        proc = _start_mid_fault(scene, pids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert poll(lambda: not _alive(pids[0]), 20), f"the proxy (pid {pids[0]}) still runs after the watchdog"
        log = (scene.journal.parent / f"{scene.journal.name}.watchdog.log").read_text()
        assert "and 1 part(s) it started (the harness's proxy) running; reverting" in log, log
        assert poll(lambda: scene.journal_data()["parts"] == {} and scene.journal_entries() == {}, 10), log
    finally:
        _kill_leftover(pids)


def test_an_unreachable_toxiproxy_fails_before_any_load_with_exit_2(scene):
    control = f"http://127.0.0.1:{free_port()}"
    scene.write_scenario(f"""
        name: absent-toxiproxy
        targets:
          api: {{proxy: {{name: api, control: "{control}", server: toxiproxy}}}}
        faults:
          - {{at: 1s, for: 2s, fault: latency, target: api, params: {{latency_ms: 100}}}}
        """)
    started = time.monotonic()
    run = scene.run(scene.args("30s"))
    assert run.returncode == ExitCode.BAD_INPUT, run.output[-4000:]
    assert f"target 'api': fault proxy control API at {control} unreachable (show proxy 'api'): connection refused" \
        in run.output, run.output[-4000:]
    assert "Traceback" not in run.output
    assert not (scene.reports / "chaos-report.json").exists(), "a report was written: the run started"
    assert time.monotonic() - started < 25


def test_a_proxy_that_cannot_start_is_named_and_leaves_nothing_behind(tmp_path):
    from chaos_events.run.journal import Journal
    from chaos_events.run.proxy_part import ProxyPartError, start_declared
    from chaos_events.scenario.loader import parse_plan

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        plan = parse_plan(f'name: t\ntargets:\n  a: {{proxy: {{name: api, listen: "127.0.0.1:{port}", '
                          f'upstream: "127.0.0.1:9"}}}}\n', "x.yml", environ={})
        journal = Journal(tmp_path / "journal.json", run_id="r1")
        with pytest.raises(ProxyPartError, match=rf"exited with code 2 before it was ready: .*127\.0\.0\.1:{port}"):
            start_declared(plan, str(tmp_path), journal, print)
    assert journal.parts() == {}
