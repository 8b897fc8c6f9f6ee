"""Per-phase figures and their change from baseline: one function, used by the reports and the pytest plugin."""
from __future__ import annotations

import json

import pytest

from chaos_events.pytest_plugin import ChaosResult
from chaos_events.scenario.model import Phase
from chaos_events.verdict.phases import derive_phases
from chaos_events.verdict.report import write_reports
from chaos_events.verdict.slo import evaluate
from chaos_events.verdict.figures import phase_figures
from chaos_events.verdict.stats import EndpointFilter
from tests.unit.test_slo import READ, WRITE, fill, make_plan, standard_record


def test_figures_compare_each_phase_with_the_baseline():
    rec = standard_record()
    figures = phase_figures(rec, derive_phases(rec, make_plan()))
    assert list(figures) == ["baseline", "fault", "recovery", "tail"]
    base, fault = figures["baseline"], figures["fault"]
    assert (base.error_rate_change, base.p95_ratio, base.p99_ratio, base.rps_change) == (None, None, None, None)
    assert fault.stats.requests == 140 and fault.stats.error_rate == pytest.approx(20 / 140)
    assert fault.error_rate_change == pytest.approx(20 / 140)  # the baseline had no errors
    assert fault.p95_ratio == pytest.approx(500 / 20) and fault.p99_ratio == pytest.approx(500 / 20)
    assert fault.rps_change == pytest.approx(7.0 / 15.0 - 1.0)
    assert [s.phase for s in fault.spans] == [Phase.FAULT] and fault.to_dict()["spans"][0]["start_t"] == 30.0


def test_an_endpoint_filter_and_a_sliver_phase():
    rec = standard_record()
    phases = derive_phases(rec, make_plan())
    reads = phase_figures(rec, phases, EndpointFilter.parse(f"{READ[0]} {READ[1]}"))
    assert reads["fault"].error_rate_change == 0.0 and reads["fault"].rps_change == pytest.approx(0.0)
    # a tail of 0.5 s is not shown in a report, but can be asked for
    short = [s if s.phase is not Phase.TAIL else type(s)(Phase.TAIL, s.start_t, s.start_t + 0.5) for s in phases]
    assert "tail" not in phase_figures(rec, short)
    assert phase_figures(rec, short, wanted=(Phase.TAIL,), min_duration_s=0.0)["tail"].stats.duration_s == 0.5


def test_no_baseline_means_no_comparison():
    rec = standard_record()
    plan = make_plan(faults=((0.0, 20.0, "pause", "broker"),))
    rec.events.clear()
    figures = phase_figures(rec, derive_phases(rec, plan))
    assert "baseline" not in figures
    assert all(f.error_rate_change is None and f.p95_ratio is None and f.rps_change is None for f in figures.values())


def test_the_report_and_the_pytest_plugin_give_the_same_figures(tmp_path):
    rec = standard_record()
    fill(rec, 0, 120, rps=1, key=("POST", "[chaos] POST /api/events invalid-json"))  # not a user endpoint
    plan = make_plan()
    paths = write_reports(evaluate(plan, rec), plan, rec, tmp_path)
    report = json.loads(paths["json"].read_text())
    result = ChaosResult(0, report, tmp_path, "", tmp_path / "s.yml", [])
    for name in ("baseline", "fault", "recovery", "tail"):
        from_report = result.phase(name)
        # the plugin recomputes from the record for named endpoints: all user endpoints, named one by one
        recomputed = result.phase(name, [f"{m} {n}" for m, n in (WRITE, READ)])
        assert recomputed == from_report, name
    assert result.phase("fault").error_rate_change == pytest.approx(20 / 140)
    assert report["phase_stats"]["fault"]["p99_ratio"] == pytest.approx(25.0)
