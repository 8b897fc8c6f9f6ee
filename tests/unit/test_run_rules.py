"""The run's rules, pure: the steady-state gate, the stop conditions, the engine waiting for the steady state, and
the verdict of halted, incomplete and unproven runs. Hand-built records, a fake clock, no sleeps."""
from __future__ import annotations

import pytest

from chaos_events.errors import ExitCode, PlanError
from chaos_events.record import FaultEventKind, ProbeSample, Record
from chaos_events.run.engine import ChaosEngine
from chaos_events.run.halts import first_trip
from chaos_events.run.steady import steady_state_now
from chaos_events.scenario.loader import parse_plan
from chaos_events.verdict.slo import evaluate
from chaos_events.scenario.model import SloMetric
from tests.unit.test_slo import START, fill, make_plan, slo, standard_record

BASE = """name: t
targets:
  host: {host: local}
probes:
  health: {http: {url: "http://127.0.0.1:8000/health", every: 1s}}
"""


def plan_of(text: str):
    return parse_plan(BASE + text, "x.yml", environ={})


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        plan_of(text)
    return [str(p) for p in info.value.problems]


# -- the scenario's sections -----------------------------------------------------------------------------------
def test_bad_rules_are_refused_with_file_line_and_field():
    assert problems("steady_state: {window: 5s}\n") == [
        "x.yml:6 steady_state: expected at least one of: probes, max_error_rate, max_p95"]
    assert problems("steady_state: {probes: [helth]}\n") == [
        "x.yml:6 steady_state: 'probes': unknown probe 'helth'; declared probes: health"]
    assert problems("halt_when: [{error_rate: {max: 2, for: 5s}}, {probe_failing: {probe: health}}, {boom: {}}]\n"
                    "on_halt: panic\n") == [
        "x.yml:6 halt_when[0] (error_rate): 'max': must be between 0 and 1; got 2",
        "x.yml:6 halt_when[1] (probe_failing): missing key 'for'",
        "x.yml:6 halt_when[2]: unknown stop condition kind 'boom'; expected one of: error_rate, latency, probe_failing, "
        "alert_firing",
        "x.yml:7: 'on_halt': unknown value 'panic'; expected one of: keep_load, stop_load"]
    assert problems("faults:\n  - {at: 10s, for: 5s, fault: cpu_burn, target: host, cores: 1, steady_state: true}\n") == [
        "x.yml:7 faults[0] (cpu_burn): 'steady_state': needs a `steady_state:` section at the top of the scenario "
        "(what the steady state is: probes, max_error_rate, max_p95)"]
    assert problems("slos:\n  - {name: loss, metric: lost_writes, check: pipeline, optional: maybe}\n") == [
        "x.yml:7 slos[0] (loss): 'optional': expected true or false; got 'maybe'",
        "x.yml:7 slos[0] (loss): 'check': pipeline needs the pipeline read-back: add `ledger: {read_back: {url: ...}}` "
        "at the top of the scenario (where acknowledged writes are read back), or use check: kafka"]


def test_the_steady_state_window_must_be_positive():
    found = problems("steady_state: {window: 0s, max_error_rate: 1%}\n")
    assert found == ["x.yml:6 steady_state: 'window': must be more than zero; got '0s'"]


# -- the steady state ------------------------------------------------------------------------------------------
def _health(rec: Record, t: int, healthy: bool) -> ProbeSample:
    sample = ProbeSample(float(t), START + t, "health", healthy, 200.0 if healthy else 503.0)
    rec.add_probe(sample)
    return sample


def test_steady_state_needs_a_healthy_probe_and_clean_recent_traffic():
    rule = plan_of("steady_state: {probes: [health], max_error_rate: 5%, max_p95: 100ms, window: 10s}\n").steady_state
    every = {"health": 1.0}
    rec = Record(run_id="r", scenario="t", start_wall=START)
    fill(rec, 0, 30)
    healthy = _health(rec, 29, True)
    assert steady_state_now(rule, rec, {"health": healthy}, every, START + 30.0, lag_s=1.0).met
    sick = _health(rec, 29, False)
    verdict = steady_state_now(rule, rec, {"health": sick}, every, START + 30.0, lag_s=1.0)
    assert (verdict.met, verdict.reason) == (False, "probe 'health' is unhealthy (value 503)")
    fill(rec, 20, 30, fail=0.5, latency_ms=400)
    verdict = steady_state_now(rule, rec, {"health": healthy}, every, START + 30.0, lag_s=1.0)
    assert verdict.reason == ("error rate 45.0% over the last 10s of all endpoints, limit 5.0%; "
                              "p95 400 ms over the last 10s of all endpoints, limit 100 ms")
    stale = steady_state_now(rule, rec, {"health": healthy}, every, START + 60.0, lag_s=1.0)
    assert stale.reason.startswith("probe 'health' has no sample from the last 5s; no requests over the last 10s")


# -- stop conditions -------------------------------------------------------------------------------------------
def test_an_error_rate_condition_trips_only_when_sustained():
    plan = plan_of("halt_when: [{error_rate: {max: 40%, for: 5s}}]\n")
    rec = Record(run_id="r", scenario="t", start_wall=START)
    fill(rec, 0, 20)
    fill(rec, 20, 24, fail=0.5)
    assert first_trip(plan.halts, rec, rec.probes, [], now_t=25.0, lag_s=1.0) is None   # 4 bad seconds of 5
    fill(rec, 24, 26, fail=0.5)
    trip = first_trip(plan.halts, rec, rec.probes, [], now_t=27.0, lag_s=1.0)
    assert trip.message == ("halt_when[0] (error_rate): error rate above 40.0% for 5s on all endpoints "
                            "(lowest 50.0%, last 50.0%)")


def test_probe_and_alert_conditions():
    plan = plan_of("halt_when:\n  - {probe_failing: {probe: health, for: 3s}}\n  - {alert_firing: {alerts: [Boom]}}\n")
    rec = Record(run_id="r", scenario="t", start_wall=START)
    for t, healthy in ((10, True), (11, False), (12, False), (13, False)):
        _health(rec, t, healthy)
    assert first_trip(plan.halts, rec, rec.probes, ["alerts"], now_t=13.5, lag_s=1.0) is None
    _health(rec, 14, False)
    trip = first_trip(plan.halts, rec, rec.probes, ["alerts"], now_t=14.0, lag_s=1.0)
    assert trip.message == "halt_when[0] (probe_failing): probe 'health' unhealthy since t=11.0s, 3s (last value 503)"
    rec.probes.clear()
    rec.add_probe(ProbeSample(5.0, START + 5, "alerts", False, 1.0, {"firing": ["Other"]}))
    assert first_trip(plan.halts, rec, rec.probes, ["alerts"], now_t=6.0, lag_s=1.0) is None
    rec.add_probe(ProbeSample(7.0, START + 7, "alerts", False, 2.0, {"firing": ["Other", "Boom"]}))
    assert first_trip(plan.halts, rec, rec.probes, ["alerts"], now_t=8.0, lag_s=1.0).message == \
        "halt_when[1] (alert_firing): alert firing: Boom"


# -- the engine waits for the steady state ---------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_engine_waits_for_the_steady_state_and_the_timeline_waits_with_it():
    plan = plan_of("steady_state: {max_error_rate: 1%, wait_up_to: 10s}\n"
                   "faults:\n  - {at: 5s, for: 5s, fault: cpu_burn, target: host, cores: 1}\n")
    clock, answers = FakeClock(), [(False, "error rate 9.0%"), (False, "error rate 3.0%"), (True, "")]
    engine = ChaosEngine(plan, Record("r", "t", START), None, clock=clock, wall=lambda: START + clock.t,
                         context_factory=None, dry_run=True, log=lambda line: None, gate=lambda: answers.pop(0))
    clock.t = 5.0
    assert engine.tick() == 5.5                                  # not met: look again in half a second
    clock.t = 6.0
    assert engine.tick() == 6.5 and engine.delay_s == pytest.approx(1.0)
    clock.t = 7.0
    assert engine.tick() == pytest.approx(12.0)                 # met at 7.0: the revert moved from 10 to 12
    assert [e.kind for e in engine.record.events] == [FaultEventKind.PLANNED]


def test_a_steady_state_that_never_comes_aborts_the_run_and_touches_nothing():
    plan = plan_of("steady_state: {max_error_rate: 1%, wait_up_to: 2s}\n"
                   "faults:\n  - {at: 5s, for: 5s, fault: cpu_burn, target: host, cores: 1}\n"
                   "  - {at: 20s, for: 5s, fault: cpu_burn, target: host, cores: 1}\n")
    clock = FakeClock()
    record = Record("r", "t", START, end_t=60.0)
    engine = ChaosEngine(plan, record, None, clock=clock, wall=lambda: START + clock.t, context_factory=None,
                         log=lambda line: None, gate=lambda: (False, "error rate 9.0%"))
    for t in (5.0, 6.0, 7.5):
        clock.t = t
        engine.tick()
    assert [(e.kind, e.fault_id) for e in record.events] == [(FaultEventKind.ABORTED, "f0#1"), (FaultEventKind.ABORTED, "f1#1")]
    assert record.events[0].detail == "steady state not met before f0 (cpu_burn host): error rate 9.0%"
    verdict = evaluate(plan, record)
    assert verdict.exit_code == ExitCode.INCOMPLETE
    assert verdict.headline.startswith("experiment incomplete: f0#1 (cpu_burn host) not injected: steady state not met "
                                       "before f0 (cpu_burn host): error rate 9.0%")


# -- the verdict -----------------------------------------------------------------------------------------------
def test_an_inject_that_failed_makes_the_experiment_incomplete():
    rec = standard_record()
    rec.events = [e for e in rec.events if e.kind is not FaultEventKind.INJECTED and e.kind is not FaultEventKind.REVERTED]
    from chaos_events.record import FaultEvent
    rec.add_event(FaultEvent(30.0, START + 30, FaultEventKind.INJECT_FAILED, "f0#1", "pause", "broker",
                             "process target 'broker' is not running"))
    verdict = evaluate(make_plan(slos=[slo(SloMetric.ERROR_RATE, max=0.9)]), rec)
    assert verdict.exit_code == ExitCode.INCOMPLETE
    assert verdict.headline.startswith("experiment incomplete: f0#1 (pause broker) inject failed: process target "
                                       "'broker' is not running; ")


def test_a_halt_and_a_lost_worker_are_named_in_the_headline():
    rec = standard_record()
    rec.meta["halt"] = {"t": 41.0, "message": "halt_when[0] (error_rate): error rate above 40.0% for 5s"}
    verdict = evaluate(make_plan(slos=[slo(SloMetric.ERROR_RATE, max=0.9)]), rec)
    assert verdict.exit_code == ExitCode.HALTED
    assert verdict.headline == "halted at t=41.0s: halt_when[0] (error_rate): error rate above 40.0% for 5s"
    rec = standard_record()
    rec.meta["workers_lost"] = [{"worker": "w2", "t": 33.5}]
    verdict = evaluate(make_plan(slos=[slo(SloMetric.ERROR_RATE, max=0.9)]), rec)
    assert verdict.exit_code == ExitCode.INCOMPLETE
    assert verdict.headline == "data incomplete: worker w2 lost at t=33.5s (its requests after that are missing)"


def test_a_run_shorter_than_its_timeline_is_incomplete():
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=20.0)
    fill(rec, 0, 20)
    verdict = evaluate(make_plan(slos=[slo(SloMetric.ERROR_RATE, max=0.9, during="baseline")]), rec)
    assert verdict.exit_code == ExitCode.INCOMPLETE
    assert "f0#1 (pause broker) not injected: the run ended at t=20.0s, before it was due at t=30s" in verdict.headline


def test_a_fault_reverted_before_its_planned_end_is_cut_short():
    from chaos_events.record import FaultEvent
    rec = standard_record()
    rec.events = [e for e in rec.events if e.kind is not FaultEventKind.REVERTED]
    rec.add_event(FaultEvent(33.0, START + 33, FaultEventKind.REVERTED, "f0#1", "pause", "broker", "test stopped"))
    verdict = evaluate(make_plan(slos=[slo(SloMetric.ERROR_RATE, max=0.9)]), rec)
    assert verdict.exit_code == ExitCode.INCOMPLETE
    assert verdict.headline.startswith("experiment incomplete: f0#1 (pause broker) cut short: reverted at t=33.0s "
                                       "(test stopped), planned until t=50s")
    # On time (the engine's own "time up", a moment late or early) is complete.
    rec.events = [e for e in rec.events if e.kind is not FaultEventKind.REVERTED]
    rec.add_event(FaultEvent(49.8, START + 49.8, FaultEventKind.REVERTED, "f0#1", "pause", "broker", "time up"))
    assert evaluate(make_plan(slos=[slo(SloMetric.ERROR_RATE, max=0.9)]), rec).exit_code == ExitCode.OK
