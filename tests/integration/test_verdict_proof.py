"""A PASS must be evidence, checked with real Locust runs against a real target (a small HTTP server process):
- a target dead before its fault is due does not pass: the fault's inject fails and the experiment is incomplete;
- a stop condition halts a run that hurts its target: faults reverted, load stopped, exit 5, the reports say why;
- the steady-state gate refuses to inject into an unhealthy system, and touches nothing;
- a Kafka-only run with lost_writes / duplicates is judged (no read-back, no host), never a crash.
Every process started here is ended by its pid.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chaos_events.backends import process as processes
from chaos_events.demo.broker import ensure_topics
from tests.helpers import free_port, run_locust, stop_group

SERVER = textwrap.dedent("""
    import http.server, sys
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 503 if self.path == "/unhealthy" else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()
""")

LOCUSTFILE = textwrap.dedent("""
    import chaos_events  # noqa: F401
    from locust import FastHttpUser, constant, task

    class Web(FastHttpUser):
        wait_time = constant(0.05)
        network_timeout = 1.0
        connection_timeout = 1.0

        @task
        def home(self):
            self.client.get("/")
""")


@pytest.fixture
def site(tmp_path):
    """The target: an HTTP server process with a pidfile; (url, pidfile, process)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], start_new_session=True)
    pidfile = tmp_path / "site.pid"
    pidfile.write_text(f"{proc.pid}\n")
    try:
        deadline = time.monotonic() + 10
        while not processes.wait_until(lambda: _answers(port), 0.2):
            assert time.monotonic() < deadline, "the site did not start"
        yield f"http://127.0.0.1:{port}", pidfile, proc
    finally:
        os.kill(proc.pid, signal.SIGCONT) if proc.poll() is None else None
        stop_group(proc, grace=3)


def _answers(port: int) -> bool:
    import urllib.request
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5).status == 200
    except OSError:
        return False


def _run(tmp_path: Path, scenario: str, host: str, run_time: str, extra: tuple[str, ...] = ()):
    (tmp_path / "lf.py").write_text(LOCUSTFILE)
    (tmp_path / "s.yml").write_text(scenario)
    reports = tmp_path / "reports"
    run = run_locust(["-f", str(tmp_path / "lf.py"), "--headless", "-u", "4", "-r", "4", "--run-time", run_time,
                      "--host", host, "--chaos-plan", str(tmp_path / "s.yml"), "--chaos-report-dir", str(reports),
                      "--chaos-journal", str(tmp_path / "journal.json"), "--chaos-metrics-port", "0", *extra],
                     timeout=120)
    (tmp_path / "locust-output.txt").write_text(run.output)
    report = json.loads((reports / "chaos-report.json").read_text()) if (reports / "chaos-report.json").exists() else None
    events = [json.loads(line) for line in (reports / "chaos-events.jsonl").read_text().splitlines()] \
        if (reports / "chaos-events.jsonl").exists() else []
    return run, report, events


def _scenario(pidfile: Path, faults: str, slos: str, extra: str = "") -> str:
    return (f"name: proof\ntargets:\n  site: {{process: {{pidfile: '{pidfile}'}}}}\n{extra}"
            f"faults:\n{faults}slos:\n{slos}")


ERRORS_SLO = "  - {name: errors, metric: error_rate, during: fault, max: 100%}\n"


@pytest.mark.slow
def test_a_target_dead_before_its_fault_does_not_pass(tmp_path, site):
    url, pidfile, proc = site
    scenario = _scenario(pidfile, "  - {at: 6s, for: 3s, fault: pause, target: site}\n", ERRORS_SLO)
    killer = subprocess.Popen(["sh", "-c", f"sleep 3; kill -9 {proc.pid}"])
    try:
        run, report, events = _run(tmp_path, scenario, url, "12s")
    finally:
        killer.wait(10)
    assert run.returncode == 6, run.output[-3000:]
    assert report["verdict"]["headline"].startswith("experiment incomplete: f0#1 (pause site) inject failed: ")
    # The failed inject is followed by the clean-up revert of whatever it did (here: nothing, the process is gone).
    assert [(e["kind"], e.get("detail") if e["kind"] == "reverted" else "") for e in events if e.get("fault_id")] \
        == [("inject_failed", ""), ("reverted", "inject failed")]
    assert "chaos verdict: FAIL" in run.output or "INCOMPLETE" in run.output.upper()


@pytest.mark.slow
def test_a_stop_condition_halts_the_run_and_reverts_the_fault(tmp_path, site):
    url, pidfile, proc = site
    scenario = _scenario(pidfile, "  - {at: 4s, for: 40s, fault: pause, target: site}\n", ERRORS_SLO,
                         extra="halt_when:\n  - {error_rate: {max: 50%, for: 2s}}\n")
    started = time.monotonic()
    run, report, events = _run(tmp_path, scenario, url, "60s")
    took = time.monotonic() - started
    assert run.returncode == 5, run.output[-3000:]
    assert took < 45, f"the load was not stopped by the halt ({took:.0f}s)\n{run.output[-3000:]}"
    assert not processes.is_stopped(proc.pid) and processes.is_alive(proc.pid)   # the pause was reverted
    halt = report["verdict"]["summary"]["halt"]
    assert halt["condition"] == "halt_when[0] (error_rate)" and halt["t"] > 4.0
    assert report["verdict"]["headline"].startswith("halted at t=")
    kinds = [e["kind"] for e in events]
    assert kinds.index("injected") < kinds.index("halted") < kinds.index("reverted")
    assert "HALTED at t=" in run.output


@pytest.mark.slow
def test_the_steady_state_gate_refuses_to_inject_into_an_unhealthy_system(tmp_path, site):
    url, pidfile, proc = site
    extra = (f"probes:\n  health: {{http: {{url: '{url}/unhealthy', every: 500ms}}}}\n"
             "steady_state: {probes: [health], wait_up_to: 3s}\n")
    scenario = _scenario(pidfile, "  - {at: 3s, for: 5s, fault: pause, target: site}\n", ERRORS_SLO, extra=extra)
    run, report, events = _run(tmp_path, scenario, url, "12s")
    assert run.returncode == 6, run.output[-3000:]
    assert "steady state not met before f0 (pause site): probe 'health' is unhealthy (value 503)" in report["verdict"]["headline"]
    assert [e["kind"] for e in events if e.get("fault_id")] == ["aborted"]   # never injected: nothing was touched
    assert processes.is_alive(proc.pid) and not processes.is_stopped(proc.pid)
    assert "waiting for the steady state before f0#1" in run.output


KAFKA_LOCUSTFILE = textwrap.dedent("""
    import chaos_events  # noqa: F401
    from chaos_events.load.payloads import EventGenerator
    from chaos_events.locust_plugin.users import KafkaUser
    from locust import constant, task

    class Producer(KafkaUser):
        wait_time = constant(0.02)

        def on_start(self):
            self.events = EventGenerator(self.producer_id)

        @task
        def write(self):
            self.produce_event(self.events.next())
""")


@pytest.mark.slow
def test_a_kafka_only_run_judges_lost_writes_without_a_host(tmp_path, tansu):
    (tmp_path / "lf.py").write_text(KAFKA_LOCUSTFILE)
    (tmp_path / "s.yml").write_text(
        "name: kafka-only\ntargets:\n  box: {host: local}\n"
        "faults:\n  - {at: 3s, for: 2s, fault: cpu_burn, target: box, cores: 1, load: 0.2}\n"
        "slos:\n  - {name: no-loss, metric: lost_writes, max: 0}\n  - {name: no-dupes, metric: duplicates, max: 0}\n")
    ensure_topics(int(tansu.rsplit(":", 1)[1]), ["events"])
    reports = tmp_path / "reports"
    run = run_locust(["-f", str(tmp_path / "lf.py"), "--headless", "-u", "2", "-r", "2", "--run-time", "8s",
                      "--kafka-bootstrap", tansu, "--kafka-topic", "events", "--chaos-plan", str(tmp_path / "s.yml"),
                      "--chaos-report-dir", str(reports), "--chaos-journal", str(tmp_path / "j.json"),
                      "--chaos-metrics-port", "0"], timeout=120)
    assert "Traceback" not in run.output, run.output[-3000:]
    report = json.loads((reports / "chaos-report.json").read_text())
    results = {r["name"]: r for r in report["verdict"]["results"]}
    assert results["no-loss"]["status"] == "pass" and results["no-dupes"]["status"] == "pass", results
    assert results["no-loss"]["message"].endswith("acknowledged writes lost (kafka check), limit 0")
    assert run.returncode == 0, run.output[-3000:]
