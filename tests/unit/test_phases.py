"""Phases of a run from fault events (or the plan's schedule), and the live phase for the exporter and UI."""
from __future__ import annotations

import pytest

from chaos_events.scenario.model import Phase
from chaos_events.record import FaultEvent, FaultEventKind, Record
from chaos_events.verdict.phases import PhaseSpan, current_phase, derive_phases, fault_occurrences
from tests.unit.test_slo import START, fill, inject, make_plan, revert


def _record(end_t: float | None = 120.0) -> Record:
    return Record(run_id="r", scenario="x", start_wall=START, end_t=end_t)


def test_phases_follow_actual_event_times_not_the_plan():
    rec = _record()
    inject(rec, "f0#1", 30.4)  # the plan says 30 s; the injection really happened at 30.4 s
    revert(rec, "f0#1", 50.9)
    assert derive_phases(rec, make_plan()) == [
        PhaseSpan(Phase.BASELINE, 0.0, 30.4, None),
        PhaseSpan(Phase.FAULT, 30.4, 50.9, "f0#1"),
        PhaseSpan(Phase.RECOVERY, 50.9, 80.9, "f0#1"),
        PhaseSpan(Phase.TAIL, 80.9, 120.0, None),
    ]


def test_plan_schedule_when_no_fault_events():
    rec = _record(100.0)
    rec.add_event(FaultEvent(30.0, START + 30, FaultEventKind.PLANNED, "f0#1", "pause", "broker"))
    plan = make_plan(faults=[(30.0, 20.0, "pause", "broker"), (60.0, 5.0, "latency", "api")], recovery_window_s=5.0)
    phases = derive_phases(rec, plan)
    assert [(p.phase, p.start_t, p.end_t, p.occurrence_id) for p in phases] == [
        (Phase.BASELINE, 0.0, 30.0, None),
        (Phase.FAULT, 30.0, 50.0, "f0#1"),
        (Phase.RECOVERY, 50.0, 55.0, "f0#1"),
        (Phase.TAIL, 55.0, 60.0, None),
        (Phase.FAULT, 60.0, 65.0, "f1#1"),
        (Phase.RECOVERY, 65.0, 70.0, "f1#1"),
        (Phase.TAIL, 70.0, 100.0, None),
    ]
    assert all(o.from_plan for o in fault_occurrences(rec, plan))


def test_overlapping_faults_merge():
    rec = _record()
    inject(rec, "f0#1", 30.0)
    inject(rec, "f1#1", 40.0, "latency", "api")
    revert(rec, "f0#1", 50.0)
    revert(rec, "f1#1", 60.0, "latency", "api")
    phases = derive_phases(rec, make_plan())
    assert [(p.phase, p.start_t, p.end_t, p.occurrence_id) for p in phases] == [
        (Phase.BASELINE, 0.0, 30.0, None),
        (Phase.FAULT, 30.0, 60.0, "f0#1+f1#1"),
        (Phase.RECOVERY, 60.0, 90.0, "f0#1+f1#1"),
        (Phase.TAIL, 90.0, 120.0, None),
    ]


def test_recovery_is_cut_short_by_the_next_injection():
    rec = _record()
    inject(rec, "f0#1", 30.0)
    revert(rec, "f0#1", 40.0)
    inject(rec, "f0#2", 50.0)
    revert(rec, "f0#2", 60.0, failed=True)  # a failed revert still ends the fault span
    phases = derive_phases(rec, make_plan())
    assert [(p.phase, p.start_t, p.end_t) for p in phases] == [
        (Phase.BASELINE, 0.0, 30.0), (Phase.FAULT, 30.0, 40.0), (Phase.RECOVERY, 40.0, 50.0),
        (Phase.FAULT, 50.0, 60.0), (Phase.RECOVERY, 60.0, 90.0), (Phase.TAIL, 90.0, 120.0),
    ]
    assert [o.revert_failed for o in fault_occurrences(rec, make_plan())] == [False, True]


def test_fault_that_outlasts_the_run_ends_at_the_end():
    rec = _record(45.0)
    inject(rec, "f0#1", 30.0)
    phases = derive_phases(rec, make_plan())
    assert phases == [PhaseSpan(Phase.BASELINE, 0.0, 30.0), PhaseSpan(Phase.FAULT, 30.0, 45.0, "f0#1")]
    (occ,) = fault_occurrences(rec, make_plan())
    assert occ.closed is False and occ.end_t == 45.0


def test_fault_at_zero_has_no_baseline():
    rec = _record(60.0)
    inject(rec, "f0#1", 0.0)
    revert(rec, "f0#1", 20.0)
    assert [p.phase for p in derive_phases(rec, make_plan())] == [Phase.FAULT, Phase.RECOVERY, Phase.TAIL]


def test_run_stopped_before_the_first_fault():
    rec = _record(20.0)  # the plan's fault at 30 s never came
    assert derive_phases(rec, make_plan()) == [PhaseSpan(Phase.BASELINE, 0.0, 20.0)]


def test_inject_failed_is_not_a_fault_span_and_does_not_fall_back_to_the_plan():
    rec = _record(100.0)
    rec.add_event(FaultEvent(30.0, START + 30, FaultEventKind.INJECT_FAILED, "f0#1", "pause", "broker", "no such pid"))
    assert derive_phases(rec, make_plan()) == [PhaseSpan(Phase.BASELINE, 0.0, 100.0)]


def test_empty_record_has_no_phases_and_end_is_inferred():
    assert derive_phases(_record(None), make_plan()) == []
    rec = _record(None)
    fill(rec, 0, 12)  # no end_t yet: the last window's end is the end
    assert derive_phases(rec, make_plan()) == [PhaseSpan(Phase.BASELINE, 0.0, 12.0)]


@pytest.mark.parametrize("t, phase", [
    (10.0, Phase.BASELINE), (30.0, Phase.FAULT), (49.9, Phase.FAULT), (50.0, Phase.RECOVERY),
    (79.0, Phase.RECOVERY), (80.0, Phase.TAIL), (95.0, Phase.FAULT),
])
def test_current_phase(t, phase):
    rec = _record(None)  # a live run: no end yet
    inject(rec, "f0#1", 30.0)
    revert(rec, "f0#1", 50.0)
    inject(rec, "f0#2", 90.0)  # still active
    assert current_phase(rec, make_plan(), t) is phase


def test_current_phase_ignores_events_after_t_and_uses_the_plan_in_a_dry_run():
    rec = _record(None)
    inject(rec, "f0#1", 30.0)
    assert current_phase(rec, make_plan(), 20.0) is Phase.BASELINE
    dry = _record(None)
    assert current_phase(dry, make_plan(), 35.0) is Phase.FAULT
    assert current_phase(dry, make_plan(), 55.0) is Phase.RECOVERY


def test_a_phase_boundary_inside_a_second_does_not_bias_the_rate():
    # Constant 10 req/s on an untouched target; faults that start and end a fraction into a second. Counting whole
    # windows by their midpoint moved up to one window across a boundary: throughput_drop read -1.2% .. +4.8%.
    from chaos_events.verdict.phases import derive_phases
    from chaos_events.verdict.stats import EndpointFilter, rps_over, spans_of

    for start, length in ((30.3, 20.4), (30.7, 19.9), (29.5, 20.5), (30.01, 10.98)):
        plan = make_plan(faults=[(start, length, "pause", "broker")])
        rec = Record(run_id="r", scenario="x", start_wall=START, end_t=120.0)
        fill(rec, 0, 120)
        inject(rec, "f0#1", start)
        revert(rec, "f0#1", start + length)
        phases = derive_phases(rec, plan)
        for phase in (Phase.BASELINE, Phase.FAULT, Phase.RECOVERY, Phase.TAIL):
            rate = rps_over(rec, phases, spans_of(phases, phase), EndpointFilter())
            assert rate == pytest.approx(10.0, rel=1e-9), (start, length, phase, rate)
