"""A worker lost mid-run (distributed.WorkerBooks writes `record.meta["workers_lost"]`): every SLO was judged on
partial data, so the run must not pass, and each report says which worker was lost and when."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from chaos_events.scenario.model import SloMetric
from chaos_events.verdict.escape import md_inline
from chaos_events.verdict.report import format_verdict_table, write_reports
from chaos_events.verdict.slo import evaluate
from tests.unit.test_slo import make_plan, slo, standard_record

LOST = {"worker": "vm_worker_2", "t": 41.25}
GONE = "worker vm_worker_2 lost at t=41.2s"


def _run(lost: bool):
    rec = standard_record()
    if lost:
        rec.meta["workers_lost"] = [dict(LOST)]
    plan = make_plan(slos=[slo(SloMetric.ERROR_RATE, "loose", max=0.99)])
    return plan, rec, evaluate(plan, rec)


def test_a_lost_worker_makes_the_run_incomplete_in_every_report(tmp_path):
    plan, rec, verdict = _run(lost=True)
    assert verdict.exit_code == 6 and not verdict.ok, verdict.headline
    assert [r.status.value for r in verdict.results] == ["pass"]  # the SLO alone would have passed
    assert verdict.headline == f"data incomplete: {GONE} (its requests after that are missing)"
    paths = write_reports(verdict, plan, rec, tmp_path)

    data = json.loads(paths["json"].read_text())
    assert data["verdict"]["summary"]["workers_lost"] == [LOST] and data["verdict"]["headline"] == verdict.headline

    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.get("tests") == "3", suite.attrib  # loose, faults reverted, data
    failure = suite.find("testcase[@name='data complete']/failure")
    assert failure.get("message") == f"data incomplete: {GONE}" and failure.get("type") == "workers_lost"

    markdown = paths["markdown"].read_text()
    assert "(exit code 6: the experiment is incomplete" in markdown
    assert f"- **Why:** {md_inline(verdict.headline)}\n" in markdown

    assert f"DATA INCOMPLETE {GONE}: its requests after that are missing" in format_verdict_table(verdict)


def test_no_lost_worker_no_data_case(tmp_path):
    plan, rec, verdict = _run(lost=False)
    assert verdict.exit_code == 0, verdict.headline
    suite = ET.parse(write_reports(verdict, plan, rec, tmp_path)["junit"]).getroot().find("testsuite")
    assert suite.find("testcase[@name='data complete']") is None and suite.get("failures") == "0"
    assert "DATA INCOMPLETE" not in format_verdict_table(verdict)
