"""The alert rules under promtool and a real Prometheus.

- `promtool check rules` and `promtool test rules` (dashboards/prometheus/alerts_test.yml), plus proof that the unit
  tests can fail: with no rules every firing case fails, and with every rule always firing every quiet case fails.
- `promtool check config` on the compose config and on the rendered prometheus-local.yml.
- A real Prometheus started on loopback from prometheus-local.yml scrapes a sample exposition of the harness's
  metrics, loads every rule without error, starts ChaosHealthDegraded, and answers every dashboard query.
  (The harness's real exporter is exercised end to end by the lead's run tests, which reuse tests/promql_exprs.py.)
"""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.helpers import free_port, require_prometheus, stop_group
from tests.promql_exprs import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    SCRAPE_JOB,
    dashboard_exprs,
    render_local_prometheus_config,
)

pytestmark = pytest.mark.prometheus

EXPECTED_ALERTS = {
    "ChaosHighErrorRate", "ChaosLatencySLOBurn", "KafkaConsumerLagHigh", "KafkaConsumerLagGrowing",
    "ChaosTargetDown", "LoadGeneratorStalled", "ChaosHealthDegraded", "ChaosFaultRevertFailed",
}
# A game-day fault lasts 20-30 s; an alert must be able to fire inside it.
MAX_FOR_S = 10


def _promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def _rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_promtool_check_rules():
    require_prometheus()
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    require_prometheus()
    result = _promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_are_the_expected_set_and_fire_within_a_fault():
    rules = _rules()
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert _seconds(rule.get("for", "0s")) <= MAX_FOR_S, f"{rule['alert']}: for {rule['for']}"
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    for window in re.findall(r"\[(\w+)\]", ALERTS.read_text()):
        assert _seconds(window) <= 20, f"rate window [{window}] too long to see a 20-30 s fault"


def test_every_rule_has_a_firing_and_a_quiet_case():
    cases: dict[str, set[str]] = {}
    for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], set()).add("fires" if case.get("exp_alerts") else "quiet")
    assert set(cases) == EXPECTED_ALERTS
    for name, kinds in cases.items():
        assert kinds == {"fires", "quiet"}, f"{name}: only {kinds}"


def _cases(kind: str) -> set[tuple[str, float]]:
    """(alertname, eval seconds) of the unit-test cases that expect alerts ("fires") or none ("quiet")."""
    found = set()
    for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            if ("fires" if case.get("exp_alerts") else "quiet") == kind:
                found.add((case["alertname"], _seconds(case["eval_time"])))
    return found


def _failed_cases(tmp_path, mutate) -> set[tuple[str, float]]:
    """Run the unit tests against a mutated copy of the rules; return the cases promtool reports as failed."""
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        group["rules"] = [r for r in (mutate(dict(rule)) for rule in group["rules"]) if r]
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump({**tests, "rule_files": ["alerts.yml"]}, sort_keys=False))
    result = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0, "promtool test rules passed against mutated rules"
    return {(name, _seconds(at)) for name, at in re.findall(r"alertname: (\w+), time: (\w+),", result.stdout + result.stderr)}


def test_unit_tests_can_fail(tmp_path):
    # Mutation checks (a test that cannot fail is a defect). Without any rule, every firing case must fail;
    # with every rule firing at once, every quiet case must fail.
    require_prometheus()
    (tmp_path / "none").mkdir()
    (tmp_path / "always").mkdir()
    assert _cases("fires") - _failed_cases(tmp_path / "none", lambda rule: None) == set()

    def always(rule):
        rule.pop("for", None)
        return {**rule, "expr": "vector(1)"}

    assert _cases("quiet") - _failed_cases(tmp_path / "always", always) == set()


def test_compose_prometheus_config_is_valid():
    require_prometheus()
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert [j["job_name"] for j in config["scrape_configs"]] == [SCRAPE_JOB]
    assert config["rule_files"] == ["alerts.yml"]


def test_local_config_renders_and_is_valid(tmp_path):
    require_prometheus()
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(render_local_prometheus_config("127.0.0.1:40123"))
    result = _promtool("check", "config", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(rendered.read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:40123"]
    assert config["rule_files"] == [str(ALERTS.resolve())]
    with pytest.raises(ValueError, match="loopback"):
        render_local_prometheus_config("192.0.2.1:9646")


# --- a real Prometheus ---------------------------------------------------------------------------------------------

def _exposition(elapsed_s: float) -> str:
    """A sample of the harness's metrics mid-fault: requests flowing with 10% errors, health probe failing."""
    t = elapsed_s
    ok, failed = 90 * t, 10 * t
    buckets = [("0.1", 0.5), ("0.5", 0.9), ("1", 1.0), ("+Inf", 1.0)]
    lines = [
        "# TYPE locust_requests_total counter",
        f'locust_requests_total{{method="POST",name="/api/events",outcome="success"}} {ok}',
        f'locust_requests_total{{method="POST",name="/api/events",outcome="failure"}} {failed}',
        "# TYPE locust_request_duration_seconds histogram",
        *(f'locust_request_duration_seconds_bucket{{method="POST",name="/api/events",le="{le}"}} {share * (ok + failed)}'
          for le, share in buckets),
        f'locust_request_duration_seconds_sum{{method="POST",name="/api/events"}} {0.2 * (ok + failed)}',
        f'locust_request_duration_seconds_count{{method="POST",name="/api/events"}} {ok + failed}',
        "# TYPE locust_users gauge", "locust_users 10",
        "# TYPE locust_workers gauge", "locust_workers 2",
        "# TYPE chaos_fault_active gauge", 'chaos_fault_active{fault="pause",target="broker"} 1',
        "# TYPE chaos_phase gauge",
        *(f'chaos_phase{{phase="{p}"}} {int(p == "fault")}' for p in ("baseline", "fault", "recovery", "tail")),
        "# TYPE chaos_fault_injections_total counter", "chaos_fault_injections_total 1",
        "# TYPE chaos_fault_reverts_total counter",
        'chaos_fault_reverts_total{result="ok"} 0', 'chaos_fault_reverts_total{result="failed"} 0',
        "# TYPE chaos_detection_seconds gauge", "chaos_detection_seconds 2.5",
        "# TYPE chaos_recovery_seconds gauge", "chaos_recovery_seconds 7",
        "# TYPE chaos_slo_ok gauge", 'chaos_slo_ok{slo="no-data-loss"} 1',
        "# TYPE chaos_ledger_writes_total counter",
        *(f'chaos_ledger_writes_total{{state="{s}"}} {n}' for s, n in (("acknowledged", ok), ("verified", 0), ("lost", 0))),
        "# TYPE kafka_consumergroup_lag gauge", 'kafka_consumergroup_lag{consumergroup="events-store",topic="events"} 50',
        "# TYPE chaos_run_info gauge", 'chaos_run_info{run_id="kit-test",scenario="kit"} 1',
        "# TYPE chaos_probe_healthy gauge", 'chaos_probe_healthy{probe="health"} 0',
        "# TYPE chaos_probe_value gauge", 'chaos_probe_value{probe="health"} 0.25',
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def sample_exporter():
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = _exposition(time.monotonic() - started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _api(base: str, path: str, **params) -> dict:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait(what: str, check, proc, log, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            last = check()
            if last:
                return last
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(60)
def test_real_prometheus_loads_the_kit(tmp_path, sample_exporter):
    require_prometheus()
    config = tmp_path / "prometheus.yml"
    config.write_text(render_local_prometheus_config(sample_exporter))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait("the chaos-events target to be up",
              lambda: any(t["health"] == "up" and t["labels"]["job"] == SCRAPE_JOB
                          for t in _api(base, "/api/v1/targets")["data"]["activeTargets"]), proc, log)

        def rules_evaluated():
            rules = [r for g in _api(base, "/api/v1/rules")["data"]["groups"] for r in g["rules"]]
            evaluated = [r for r in rules if not r.get("lastEvaluation", "0001").startswith("0001")]  # zero time: not yet
            return rules if len(rules) == len(EXPECTED_ALERTS) and len(evaluated) == len(rules) else None

        rules = _wait("every rule to be evaluated", rules_evaluated, proc, log)
        assert {r["name"] for r in rules} == EXPECTED_ALERTS
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

        # The probe says unhealthy, so ChaosHealthDegraded must become pending (firing needs `for: 5s`).
        alert = _wait("ChaosHealthDegraded to start",
                      lambda: [a for a in _api(base, "/api/v1/alerts")["data"]["alerts"]
                               if a["labels"]["alertname"] == "ChaosHealthDegraded"], proc, log)
        assert alert[0]["labels"]["probe"] == "health" and alert[0]["state"] in {"pending", "firing"}

        # Rates need two scrapes; then every dashboard query must run and the core ones return data.
        throughput = next(e for e in dashboard_exprs() if "Throughput" in e.source)
        _wait("a request rate", lambda: _api(base, "/api/v1/query", query=throughput.promql)["data"]["result"], proc, log)
        empty = []
        for expr in dashboard_exprs():
            answer = _api(base, "/api/v1/query", query=expr.promql)
            assert answer["status"] == "success", (expr.source, answer)
            if not answer["data"]["result"]:
                empty.append(expr.source)
        assert not empty, f"dashboard queries with no data from a full sample exposition: {empty}"
    finally:
        stop_group(proc)
