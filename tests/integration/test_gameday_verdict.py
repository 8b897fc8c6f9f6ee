"""The verdict of whole runs against the real demo platform: Locust, the harness, a Tansu broker, the API, the
consumer and the TCP fault proxy, each test on a platform of its own (free ports).

Three runs, one per outcome the harness must get right:
- a fault the platform tolerates (150 ms on the Kafka route): exit 0, four reports, every SLO PASS;
- a broker restart (Tansu keeps its log in memory): acknowledged writes are lost, the ledger counts them, exit 3;
- a consumer killed for good: reads of acknowledged events and /health never come back, "did not recover", exit 3.
Each run is ~25 s of load. Scenarios live in tests/integration/scenarios/ and use the platform's DEMO_* variables.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from chaos_events.backends.proxy import ProxyClient
from chaos_events.scenario.loader import load_plan
from chaos_events.demo.supervisor import ROOT as DEMO_ROOT
from tests.helpers import free_port, run_locust

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
REPORT_FILES = ("chaos-report.json", "chaos-report.xml", "chaos-report.md", "chaos-report.html")
RUN_TIME = "25s"
LOCUST_TIMEOUT_S = 150  # 25 s of load, the end-of-run ledger audit (catch_up), and a busy 2-core machine


def scenario_env(platform) -> dict[str, str]:
    """What the scenarios interpolate: the platform's DEMO_* variables, plus the demo CLI script for restarts."""
    return {**platform.env(), "IT_DEMO_MAIN": str(DEMO_ROOT / "demo" / "__main__.py")}


def run_gameday(platform, scenario: Path, out: Path, run_time: str = RUN_TIME):
    out.mkdir(parents=True, exist_ok=True)
    args = ["-f", "locustfiles/platform.py", "--headless", "-u", "10", "-r", "10", "--run-time", run_time,
            "--host", platform.api_url, "--kafka-bootstrap", platform.kafka_bootstrap,
            "--chaos-plan", str(scenario), "--chaos-report-dir", str(out),
            "--chaos-metrics-port", str(free_port()), "--chaos-journal", str(out / "j.json")]
    return run_locust(args, timeout=LOCUST_TIMEOUT_S, env=scenario_env(platform))


def explain(run) -> str:
    return f"exit code {run.returncode}\nstdout (tail):\n{run.stdout[-5000:]}\nstderr (tail):\n{run.stderr[-3000:]}"


class _HtmlCheck(HTMLParser):
    """Collects the tags of a page, so a test can tell a real report from an empty or truncated file."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def read_reports(out: Path) -> tuple[dict, ET.Element, str, _HtmlCheck]:
    """All four reports, each parsed; fails naming the file that is missing or unreadable."""
    missing = [name for name in REPORT_FILES if not (out / name).is_file()]
    assert not missing, f"reports not written in {out}: {missing}"
    report = json.loads((out / "chaos-report.json").read_text())
    junit = ET.parse(out / "chaos-report.xml").getroot()
    markdown = (out / "chaos-report.md").read_text()
    html = _HtmlCheck()
    html.feed((out / "chaos-report.html").read_text())
    html.close()
    return report, junit, markdown, html


def results_by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["verdict"]["results"]}


def junit_cases(junit: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in junit.iter("testcase")}


def fault_events(report: dict) -> list[tuple[str, str]]:
    return [(e["kind"], e["fault_id"]) for e in report["record"]["events"]]


def test_tolerated_fault_passes_with_four_reports(fresh_platform, tmp_path):
    scenario = SCENARIOS / "tolerated-kafka-latency.yml"
    out = tmp_path / "reports"
    run = run_gameday(fresh_platform, scenario, out)

    assert run.returncode == 0, explain(run)
    assert "chaos verdict: PASS (exit code 0)" in run.stdout, explain(run)
    report, junit, markdown, html = read_reports(out)

    # JSON: every SLO judged and held; the one fault was injected and reverted once.
    assert report["result"] == "PASS" and report["verdict"]["exit_code"] == 0
    statuses = {name: r["status"] for name, r in results_by_name(report).items()}
    assert statuses == {"ingest-errors": "pass", "ingest-p95": "pass", "no-lost-writes": "pass"}, report["verdict"]
    assert fault_events(report) == [("injected", "f0#1"), ("reverted", "f0#1")]
    lost = results_by_name(report)["no-lost-writes"]
    assert lost["details"]["ledger"][0]["acknowledged"] > 100, lost  # the read-back really checked writes
    ingest = results_by_name(report)["ingest-errors"]["details"]
    assert ingest["requests"] > 20 and ingest["failures"] == 0, ingest

    # JUnit: one passing testcase per SLO plus "faults reverted", no failures.
    cases = junit_cases(junit)
    assert set(cases) == {"ingest-errors", "ingest-p95", "no-lost-writes", "faults reverted"}
    assert junit.get("failures") == "0" and junit.get("tests") == "4"
    assert not any(case.find("failure") is not None or case.find("skipped") is not None for case in cases.values())

    # Markdown and HTML carry the same verdict.
    assert "- **Result:** **PASS** (exit code 0" in markdown
    assert "| no-lost-writes | lost_writes | PASS |" in markdown
    assert {"html", "svg", "table"} <= set(html.tags), html.tags[:20]

    # The revert really removed the toxic from the proxy route.
    assert ProxyClient(fresh_platform.proxy_control_url).toxics("kafka") == []


def test_broker_restart_loses_acknowledged_writes(fresh_platform, tmp_path, monkeypatch):
    scenario = SCENARIOS / "broker-restart-loses-writes.yml"
    for name, value in scenario_env(fresh_platform).items():
        monkeypatch.setenv(name, value)
    target = load_plan(str(scenario)).targets["broker"]
    # The scenario restarts the broker exactly as the platform itself would.
    assert list(target.spec.restart) == fresh_platform.restart_commands["broker"]
    broker_before = fresh_platform.pid("broker")
    out = tmp_path / "reports"
    run = run_gameday(fresh_platform, scenario, out)

    assert run.returncode == 3, explain(run)
    report, junit, markdown, _ = read_reports(out)
    lost = results_by_name(report)["no-lost-writes"]
    assert lost["status"] == "fail", lost
    assert lost["value"] > 0, lost
    failure = junit_cases(junit)["no-lost-writes"].find("failure")
    assert failure is not None, ET.tostring(junit, encoding="unicode")[:3000]
    match = re.fullmatch(r"lost_writes: (\d+) acknowledged writes lost \(kafka check\), limit 0", failure.get("message"))
    assert match, failure.get("message")
    assert int(match.group(1)) == lost["value"]
    assert f"FAIL no-lost-writes (lost_writes): {match.group(1)} acknowledged writes lost" in run.stdout, explain(run)
    assert "- **Result:** **FAIL** (exit code 3" in markdown

    # A real restart: a new broker process runs now, and the old one is gone.
    assert fault_events(report)[0] == ("injected", "f0#1")
    broker_after = fresh_platform.pid("broker")
    assert broker_after is not None and broker_after != broker_before


def test_consumer_killed_for_good_does_not_recover(fresh_platform, tmp_path):
    scenario = SCENARIOS / "consumer-killed-for-good.yml"
    out = tmp_path / "reports"
    run = run_gameday(fresh_platform, scenario, out)

    assert run.returncode == 3, explain(run)
    report, junit, markdown, _ = read_reports(out)
    results = results_by_name(report)
    recovery = results["recovery"]
    assert recovery["status"] == "fail" and recovery["value"] is None, recovery
    assert recovery["message"].startswith("did not recover: f0#1 (kill consumer): not back in the baseline band"), recovery
    failure = junit_cases(junit)["recovery"].find("failure")
    assert failure is not None and failure.get("message").startswith("recovery_time: did not recover"), \
        ET.tostring(junit, encoding="unicode")[:3000]
    assert "did not recover" in markdown

    # The health probe saw it: /health reports the consumer's heartbeat, so it turned 503 soon after the kill.
    detection = results["detection"]
    assert detection["status"] == "pass", detection
    assert detection["details"]["occurrences"][0]["signal"] == "probe health unhealthy (value 503)", detection
    last = [s for s in report["record"]["probes"] if s["probe"] == "health"][-1]
    assert last["healthy"] is False and last["detail"].get("consumer") is False, last

    # `restart: false` was honoured: the consumer was not started again.
    assert fresh_platform.pid("consumer") is None
