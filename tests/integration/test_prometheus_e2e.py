"""End to end with a real Prometheus: it scrapes the harness's exporter during a real demo run with a fault in it,
evaluates the kit's alert rules, and the harness reads the alerts back for its verdict.

Checks, all against that one run:
- every PromQL expression of the kit (tests/promql_exprs.py: dashboard panels, annotations, variables, alert rules)
  is valid, and every dashboard query returns data over the run (no dead panel); an alert's condition may be empty
  when it does not fire, but every metric it reads must have data;
- the fault (consumer paused 20 s) makes KafkaConsumerLagHigh fire in Prometheus during the fault;
- the verdict's alerts_fired SLO saw it through --chaos-prometheus-url (PASS in the JSON report).
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port, require_prometheus, run_locust, stop_group
from tests.promql_exprs import ALERTS, extract_promql_exprs, metric_names, render_local_prometheus_config

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "consumer-pause-alerts.yml"
RUN_TIME = "50s"  # the consumer may need ~12 s to rejoin its group after the pause (session timeout)
EXPECTED_ALERT = "KafkaConsumerLagHigh"
PROMETHEUS_READY_S = 60


def api(base: str, path: str, **params) -> dict:
    """GET a Prometheus HTTP API path; returns `data`, fails the test with Prometheus's own error text."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        raise AssertionError(f"GET {url}: HTTP {exc.code}: {body[:500]}") from None
    assert payload.get("status") == "success", f"GET {url}: {payload}"
    return payload["data"]


def query_range(base: str, promql: str, start: float, end: float) -> list[dict]:
    return api(base, "/api/v1/query_range", query=promql, start=f"{start:.3f}", end=f"{end:.3f}", step="1s")["result"]


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus on a free loopback port, scraping the exporter port it yields with the kit's alert rules."""
    require_prometheus()
    exporter_port, web_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(render_local_prometheus_config(f"127.0.0.1:{exporter_port}", ALERTS))
    log = tmp_path / "prometheus.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{web_port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + PROMETHEUS_READY_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready within {PROMETHEUS_READY_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, exporter_port
    finally:
        stop_group(proc)


def test_real_prometheus_scrapes_alerts_and_every_kit_query_has_data(fresh_platform, prometheus, tmp_path):
    base, exporter_port = prometheus
    platform = fresh_platform
    out = tmp_path / "reports"
    run = run_locust(
        ["-f", "locustfiles/platform.py", "--headless", "-u", "10", "-r", "10", "--run-time", RUN_TIME,
         "--host", platform.api_url, "--kafka-bootstrap", platform.kafka_bootstrap, "--chaos-plan", str(SCENARIO),
         "--chaos-report-dir", str(out), "--chaos-metrics-port", str(exporter_port), "--chaos-journal",
         str(out / "j.json"), "--chaos-prometheus-url", base],
        timeout=180, env=platform.env())
    explain = f"exit code {run.returncode}\nstdout:\n{run.stdout[-5000:]}\nstderr:\n{run.stderr[-2000:]}"
    report = json.loads((out / "chaos-report.json").read_text())
    results = {r["name"]: r for r in report["verdict"]["results"]}

    # The verdict saw the alert through Prometheus.
    alert_slo = results["lag-alert-fires"]
    assert alert_slo["status"] == "pass", alert_slo
    assert alert_slo["details"]["alerts"][0]["fired"] is True, alert_slo
    broken = [f"{r['name']}: {r['message']}" for r in report["verdict"]["results"] if r["status"] != "pass"]
    assert run.returncode == 0 and not broken, explain + "\nSLOs not passed:\n" + "\n".join(broken)

    # The run on Prometheus's clock: the record's wall start plus run times.
    start = report["record"]["start_wall"]
    end = start + report["duration_s"]
    injected = {e["kind"]: e["t"] for e in report["record"]["events"]}
    fault_start, fault_end = start + injected["injected"], start + injected["reverted"]

    # Prometheus itself fired the alert during the fault (not only the probe's reading of it).
    firing = query_range(base, f'ALERTS{{alertname="{EXPECTED_ALERT}", alertstate="firing"}}', fault_start, fault_end + 10)
    assert firing, f"{EXPECTED_ALERT} never fired between t={injected['injected']:.0f}s and t={injected['reverted'] + 10:.0f}s"
    # The health probe's gauge drives ChaosHealthDegraded while the consumer is frozen (its heartbeat goes stale),
    # and the alert ends once /health is back: it must not hold itself up through the alerts probe.
    degraded = 'ALERTS{alertname="ChaosHealthDegraded", alertstate="firing"%s}'
    assert query_range(base, degraded % ', probe="health"', fault_start, fault_end), \
        "ChaosHealthDegraded{probe=\"health\"} did not fire while the consumer was frozen"
    still = query_range(base, degraded % "", end - 5, end)
    assert not still, f"ChaosHealthDegraded still fires at the end of the run: {[s['metric'] for s in still]}"
    assert not query_range(base, 'chaos_probe_healthy{probe="alerts"}', start, end), \
        "the alerts probe must not be exported as chaos_probe_healthy (ChaosHealthDegraded would latch on it)"

    dead: list[str] = []
    for expr in extract_promql_exprs():
        try:
            if expr.kind == "annotation":
                # Fault annotations exist only while a fault is active.
                result = query_range(base, expr.promql, fault_start, fault_end)
            else:
                result = query_range(base, expr.promql, start, end)
            if expr.kind in ("alert", "record"):
                # A rule's condition is empty while it does not fire; what it reads must not be.
                for name in sorted(metric_names(expr.promql)):
                    if not query_range(base, name, start, end):
                        dead.append(f"{expr.source}: metric {name} has no data during the run")
            elif not result:
                dead.append(f"{expr.source}: no data during the run for {expr.promql}")
        except AssertionError as exc:
            dead.append(f"{expr.source}: query failed: {exc}")
    assert not dead, "dead queries:\n" + "\n".join(dead)
