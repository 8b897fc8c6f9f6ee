"""The four report files, the console lines, and reading a record back for `chaos-events report`."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from chaos_events.errors import ChaosError
from chaos_events.scenario.model import ProbeKind, ProbeSpec, SloMetric
from chaos_events.record import LedgerResult, ProbeSample, Record
from chaos_events.verdict.report import format_verdict_table, load_record, progress_line, write_reports
from chaos_events.verdict.slo import evaluate
from chaos_events.verdict.report import atomic_write_text
from tests.unit.test_slo import START, make_plan, revert, slo, standard_record

ALERTS = {"alerts": ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS, 5.0, {"url": "http://127.0.0.1:9090"})}


def _run(revert_failed: bool = False):
    rec = standard_record()
    rec.ledger = [LedgerResult("kafka", acknowledged=20000, checked=20000, found=18468, lost=1532)]
    for t in range(0, 120, 5):
        rec.add_probe(ProbeSample(float(t), START + t, "alerts", None, None, {"firing": []}))
    if revert_failed:
        revert(rec, "f0#1", 50.2, failed=True)
    plan = make_plan(probes=ALERTS, slos=[
        slo(SloMetric.ERROR_RATE, "errors-while-broker-paused", max=0.9, endpoints="POST /api/events"),
        slo(SloMetric.LOST_WRITES, "no-data-loss", max=0, check="kafka"),
        slo(SloMetric.RECOVERY_TIME, "recovery", max=30),
        slo(SloMetric.ALERTS_FIRED, "broker-alert", alerts=["KafkaBrokerDown"], within=60),
        slo(SloMetric.HEALTH_TRUTHFUL, "health-does-not-lie"),
    ])
    return plan, rec, evaluate(plan, rec)


def test_reports_are_written_and_parse(tmp_path):
    plan, rec, verdict = _run()
    paths = write_reports(verdict, plan, rec, tmp_path / "reports")
    assert {k: p.name for k, p in paths.items()} == {
        "json": "chaos-report.json", "junit": "chaos-report.xml", "markdown": "chaos-report.md", "html": "chaos-report.html"}
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted(p.name for p in paths.values())

    data = json.loads(paths["json"].read_text())
    assert data["scenario"] == "broker-pause" and data["result"] == "FAIL"
    assert data["verdict"]["exit_code"] == 3
    assert [r["status"] for r in data["verdict"]["results"]] == ["pass", "fail", "pass", "not_verifiable", "not_verifiable"]
    assert [p["phase"] for p in data["phases"]] == ["baseline", "fault", "recovery", "tail"]
    assert data["phase_stats"]["fault"]["error_rate_change"] == pytest.approx(20 / 140)
    assert Record.from_dict(data["record"]).to_dict() == rec.to_dict()


def test_junit_names_the_suite_and_the_lost_count(tmp_path):
    plan, rec, verdict = _run()
    root = ET.parse(write_reports(verdict, plan, rec, tmp_path)["junit"]).getroot()
    suite = root.find("testsuite")
    assert suite.get("name") == "chaos-events.broker-pause"
    assert suite.get("tests") == "6" and suite.get("failures") == "1" and suite.get("skipped") == "2"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["errors-while-broker-paused", "no-data-loss", "recovery", "broker-alert",
                           "health-does-not-lie", "faults reverted"]
    failure = cases["no-data-loss"].find("failure")
    assert failure.get("message") == "lost_writes: 1532 acknowledged writes lost (kafka check), limit 0"
    assert cases["broker-alert"].find("skipped").get("message") == "not verifiable: alerts_fired: no Prometheus configured"
    assert cases["recovery"].find("failure") is None and cases["faults reverted"].find("failure") is None


def test_revert_failure_shows_everywhere(tmp_path):
    plan, rec, verdict = _run(revert_failed=True)
    assert verdict.exit_code == 4
    paths = write_reports(verdict, plan, rec, tmp_path)
    failure = ET.parse(paths["junit"]).getroot().find("testsuite/testcase[@name='faults reverted']/failure")
    assert failure.get("message") == "revert failed: f0#1 (pause broker) at t=50.2s: docker unpause: timed out"
    md = paths["markdown"].read_text()
    assert "**REVERT FAILED** (exit code 4: a fault could not be reverted)" in md
    assert "Revert failed for f0#1 (pause broker) at t=50.2s: docker unpause: timed out." in md
    assert "- [ ] Restore broker by hand now" in md
    assert "REVERT FAILED f0#1 (pause broker) at t=50.2s" in format_verdict_table(verdict)


def test_markdown_is_the_test_results_document(tmp_path):
    plan, rec, verdict = _run()
    md = write_reports(verdict, plan, rec, tmp_path)["markdown"].read_text()
    for heading in ("# Chaos test results: broker-pause", "## SLOs", "## Observed behaviour per phase",
                    "## Faults timeline", "## Alerts: expected vs fired", "## Detection and recovery",
                    "## Unexpected behaviour", "## Action items"):
        assert heading in md
    assert "- **Date:** 2023-11-14 22:13:20 UTC" in md
    assert "| no-data-loss | lost_writes | **FAIL** | 1532 writes | 0 writes | 1532 acknowledged writes lost (kafka check), limit 0 |" in md
    assert "| fault | 30–50s | 140 | 14.3% | +14.3 pts | 500 ms | 25.00x | 7.0 | -53% |" in md
    assert "| 30.0s | injected | f0#1 | pause | broker |  |" in md
    assert "recovered 5.0s after revert at 50.0s" in md
    # brackets from the text are escaped (they render as "[no-data-loss]"), so a name can never become a link
    assert "- [ ] Stop losing acknowledged writes" in md and r"\[no-data-loss\] lost_writes: 1532" in md


def test_html_is_self_contained_with_a_well_formed_svg_timeline(tmp_path):
    plan, rec, verdict = _run()
    page = write_reports(verdict, plan, rec, tmp_path)["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|img)\b", page) and "src=" not in page
    svg_text = re.search(r"<svg\b.*?</svg>", page, re.S).group(0)
    # inline SVG in HTML needs no xmlns (the HTML parser gives <svg> its namespace), so the page names no URL at all
    svg = ET.fromstring(svg_text)
    assert [r.get("class") for r in svg.findall("rect")] == ["fault", "recovery"]
    assert {p.get("class") for p in svg.findall("polyline")} == {"series-rps", "series-error_rate", "series-p95_ms"}
    assert "pause broker" in [t.text for t in svg.findall("text")]
    assert "no-data-loss" in page and "1532 acknowledged writes lost" in page


def test_atomic_write_leaves_no_temp_files(tmp_path):
    plan, rec, verdict = _run()
    write_reports(verdict, plan, rec, tmp_path)
    write_reports(verdict, plan, rec, tmp_path)  # overwriting works and leaves nothing behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chaos-report.html", "chaos-report.json", "chaos-report.md", "chaos-report.xml"]
    target = tmp_path / "chaos-report.md"
    before = target.read_text()
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "half written \ud800")  # fails inside the write
    assert target.read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_report_dir_that_cannot_be_created(tmp_path):
    plan, rec, verdict = _run()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ChaosError, match=r"file/reports: cannot create the report directory"):
        write_reports(verdict, plan, rec, blocker / "reports")


def test_empty_record_reports(tmp_path):
    plan = make_plan(slos=[slo(m) for m in SloMetric])
    rec = Record(run_id="r0", scenario="x", start_wall=START)
    paths = write_reports(evaluate(plan, rec), plan, rec, tmp_path)
    ET.fromstring(re.search(r"<svg\b.*?</svg>", paths["html"].read_text(), re.S).group(0))
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert suite.get("tests") == str(len(SloMetric)) and suite.get("skipped") == str(len(SloMetric))


def test_console_table_and_progress_line():
    plan, rec, verdict = _run()
    table = format_verdict_table(verdict).splitlines()
    assert table[0].split() == ["SLO", "METRIC", "VALUE", "LIMIT", "RESULT"]
    assert table[3].split() == ["no-data-loss", "lost_writes", "1532", "writes", "0", "writes", "FAIL"]
    assert table[5].split()[-1] == "N/A" and table[2].split()[-1] == "PASS"
    assert table[-1] == "chaos verdict: FAIL (exit code 3)"
    line = progress_line(rec, plan, 42.0, ["pause broker"])
    assert line == "[chaos] t=42s phase=fault faults=pause broker | last 5s: 7.0 req/s, errors 14.3%, p95 500 ms"


def test_load_record_from_report_or_bare_record(tmp_path):
    plan, rec, verdict = _run()
    paths = write_reports(verdict, plan, rec, tmp_path)
    assert load_record(paths["json"]).to_dict() == rec.to_dict()
    bare = tmp_path / "record.json"
    bare.write_text(json.dumps(rec.to_dict()))
    assert load_record(bare).to_dict() == rec.to_dict()


def test_load_record_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  not json")
    with pytest.raises(ChaosError) as exc:
        load_record(bad)
    assert str(exc.value) == (f"{bad}:2: not valid JSON: Expecting property name enclosed in double quotes; "
                              "expected a chaos-report.json or a run record written by the harness")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ChaosError) as exc:
        load_record(other)
    assert str(exc.value) == (f"{other}: not a run record: missing 'run_id', 'scenario', 'start_wall'; "
                              "expected a chaos-report.json or a run record written by the harness")
    with pytest.raises(ChaosError, match=r"missing.json: cannot read the run record: No such file or directory"):
        load_record(tmp_path / "missing.json")


def test_chaos_events_report_rejudges_a_saved_run(tmp_path):
    from chaos_events.cli import main

    scenario = tmp_path / "s.yml"
    scenario.write_text(
        "name: broker-pause\n"
        "targets:\n  broker: {process: {pidfile: .run/kafka.pid}}\n"
        "faults:\n  - {at: 30s, for: 20s, fault: pause, target: broker}\n"
        "slos:\n  - {name: no-data-loss, metric: lost_writes, max: 0, check: kafka}\n"
    )
    _, rec, _ = _run()
    record_json = tmp_path / "record.json"
    record_json.write_text(json.dumps(rec.to_dict()))
    assert main(["report", str(record_json), "--plan", str(scenario), "--out", str(tmp_path / "out")]) == 3
    assert (tmp_path / "out" / "chaos-report.xml").exists()
