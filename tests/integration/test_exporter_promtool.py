"""The exporter over real HTTP: `promtool check metrics` finds nothing to lint, and OpenMetrics is served on request."""
from __future__ import annotations

import subprocess
import urllib.request

from prometheus_client import CollectorRegistry

from chaos_events.observe.exporter import Exporter
from chaos_events.observe.recorder import Recorder
from chaos_events.record import Record
from tests.helpers import free_port, require_prometheus


def _promtool(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


def _exporter() -> Exporter:
    now = [1001.0]
    record = Record("run-1", "gameday", 1000.0)
    recorder = Recorder(record, wall=lambda: now[0])
    for i in range(200):
        now[0] = 1001.0 + i / 50
        recorder.on_request("POST", "/api/events", 5 + i * 7.3, i % 9 == 0)
        recorder.on_request("GET", "/api/events/[id]", 2 + i % 40, False)
    state = {
        "phase": "recovery", "active_faults": [], "planned_faults": [("pause", "broker"), ("latency", "api")],
        "users": 10, "workers": 0, "injections": 2, "reverts_ok": 2, "reverts_failed": 0, "detection_s": 3.0,
        "recovery_s": 12.5, "slo_ok": {"recovery": True, "no-data-loss": None},
        "ledger": {"acknowledged": 180, "verified": 180, "lost": 0},
        "consumer_lag": {("events-store", "events"): 0}, "run_id": "run-1", "scenario": "gameday",
    }
    return Exporter(record, lambda: state, registry=CollectorRegistry(), slo_thresholds_s=(0.3, 0.75),
                    totals=recorder.totals)


def test_metrics_endpoint_passes_promtool_check_metrics():
    require_prometheus()
    exporter = _exporter()
    port = free_port()
    try:
        exporter.serve("127.0.0.1", port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            content_type = response.headers["Content-Type"]
            text = response.read().decode()
    finally:
        exporter.close()
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'locust_request_duration_seconds_bucket{method="POST",name="/api/events",le="0.3"}' in text
    assert "chaos_recovery_seconds 12.5" in text
    result = _promtool(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_promtool_check_is_not_vacuous():
    # The same check must complain about a counter without _total, or the test above proves nothing.
    require_prometheus()
    bad = "# HELP chaos_things Things.\n# TYPE chaos_things counter\nchaos_things 1\n"
    result = _promtool(bad)
    assert "counter metrics should have \"_total\" suffix" in result.stdout + result.stderr


def test_openmetrics_is_served_when_asked_for():
    exporter = _exporter()
    port = free_port()
    try:
        exporter.serve("127.0.0.1", port)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(request, timeout=10) as response:
            content_type = response.headers["Content-Type"]
            text = response.read().decode()
    finally:
        exporter.close()
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    assert "# TYPE chaos_run info" in text
    assert 'chaos_run_info{run_id="run-1",scenario="gameday"} 1.0' in text
    assert "# TYPE locust_requests counter" in text


def test_close_frees_the_port():
    exporter = _exporter()
    port = free_port()
    exporter.serve("127.0.0.1", port)
    exporter.close()
    again = _exporter()
    try:
        again.serve("127.0.0.1", port)  # would raise OSError if the first server still held it
    finally:
        again.close()
