"""SLO functions of the verdict on hand-built records: pass and fail for every metric, plus the edge cases
(no baseline, run stopped early, zero traffic, a fault that outlasts the run, an empty record).

The builders at the top are shared with test_phases.py and test_report.py.
"""
from __future__ import annotations

import math
import random

import pytest

from chaos_events.errors import ExitCode
from chaos_events.scenario.model import FaultSpec, Phase, Plan, ProbeKind, ProbeSpec, Settings, SloMetric, SloSpec
from chaos_events.scenario.loader import parse_plan
from chaos_events.record import EndpointWindow, FaultEvent, FaultEventKind, LedgerResult, ProbeSample, Record, bucket_ms
from chaos_events.verdict import stats
from chaos_events.verdict.phases import derive_phases
from chaos_events.scenario.probe_kinds import HttpProbe
from chaos_events.verdict.metrics import metric_def
from chaos_events.verdict.slo import SloStatus, evaluate, evaluate_slo

START = 1_700_000_000.0  # start_wall on a whole second: run second k is wall second START + k
WRITE = ("POST", "/api/events")
READ = ("GET", "/api/events/{id}")


# The least each metric needs to be a valid SLO.
MINIMAL_PARAMS = {
    SloMetric.ERROR_RATE: {"max": 0.1}, SloMetric.LATENCY: {"max": 1}, SloMetric.THROUGHPUT_DROP: {"max": 0.5},
    SloMetric.DETECTION_TIME: {"via": "errors", "max": 30}, SloMetric.RECOVERY_TIME: {"max": 30},
    SloMetric.ALERTS_FIRED: {"alerts": ["X"], "within": 60}, SloMetric.HEALTH_TRUTHFUL: {"probe": "health"},
    SloMetric.BLAST_RADIUS: {"endpoints": ["GET /x"]},
}


# -- builders ------------------------------------------------------------------------------------------------------
def make_plan(faults=((30.0, 20.0, "pause", "broker"),), slos=(), probes=None, name="broker-pause", **settings) -> Plan:
    specs = tuple(FaultSpec(index=i, type=ftype, target=target, at_s=at, for_s=dur)
                  for i, (at, dur, ftype, target) in enumerate(faults))
    return Plan(name=name, source=f"scenarios/{name}.yml", targets={}, probes=probes or {}, faults=specs,
                slos=tuple(slos), settings=Settings(**{"recovery_window_s": 30.0, "sustain_s": 5.0, **settings}),
                description="a hand-built plan")


def slo(metric: SloMetric, name: str | None = None, optional: bool = False, **params) -> SloSpec:
    """An SLO with its params built by the metric's own model, as the loader builds them (the least it needs, from
    MINIMAL_PARAMS, unless given)."""
    values = params or MINIMAL_PARAMS.get(metric, {})
    return SloSpec(name or metric.value, metric, metric_def(metric).Params.model_validate(values), optional=optional)


def fill(rec: Record, t0: int, t1: int, rps: int = 10, fail: float = 0.0, latency_ms: float = 20.0,
         key: tuple[str, str] = WRITE) -> None:
    """Seconds t0..t1-1 of run time each get `rps` requests, `fail` of them failed, all at `latency_ms`."""
    for t in range(t0, t1):
        failures = int(round(rps * fail))
        rec.windows.setdefault(int(START) + t, {})[key] = EndpointWindow(rps, failures, {bucket_ms(latency_ms): rps})


def inject(rec: Record, fid: str, t: float, ftype: str = "pause", target: str = "broker") -> None:
    rec.add_event(FaultEvent(t, START + t, FaultEventKind.INJECTED, fid, ftype, target))


def revert(rec: Record, fid: str, t: float, ftype: str = "pause", target: str = "broker", failed: bool = False) -> None:
    kind = FaultEventKind.REVERT_FAILED if failed else FaultEventKind.REVERTED
    rec.add_event(FaultEvent(t, START + t, kind, fid, ftype, target, "docker unpause: timed out" if failed else ""))


def standard_record(end: int = 120, recover_at: int = 55, fault_latency_ms: float = 500.0) -> Record:
    """Baseline 0-30 s clean (10 req/s, 20 ms); fault 30-50 s at 50% errors and 500 ms, 2 req/s;
    errors linger until `recover_at`; clean again until `end`."""
    rec = Record(run_id="r1", scenario="broker-pause", start_wall=START, end_t=float(end))
    fill(rec, 0, 30)
    fill(rec, 30, 50, rps=2, fail=0.5, latency_ms=fault_latency_ms)
    fill(rec, 50, recover_at, rps=10, fail=0.3, latency_ms=300)
    fill(rec, recover_at, end)
    fill(rec, 0, end, rps=5, key=READ)  # an independent endpoint, untouched by the fault
    inject(rec, "f0#1", 30.0)
    revert(rec, "f0#1", 50.0)
    return rec


def judge(spec: SloSpec, rec: Record, plan: Plan | None = None):
    plan = plan or make_plan(slos=[spec])
    return evaluate_slo(spec, rec, derive_phases(rec, plan), plan)


# -- error_rate ----------------------------------------------------------------------------------------------------
def test_error_rate_during_fault_fails_with_what_when_and_by_how_much():
    result = judge(slo(SloMetric.ERROR_RATE, max=0.10, endpoints="POST /api/events"), standard_record())
    assert result.status is SloStatus.FAIL
    assert result.value == pytest.approx(0.5)
    assert result.limit == 0.10
    assert "error rate 50.0% (20 of 40 requests to POST /api/events) during fault (t=30s–50s)" in result.message
    assert "limit 10.0%, over by 40.0 points" in result.message
    assert result.details["baseline"] == 0.0 and result.details["change"] == pytest.approx(0.5)


def test_error_rate_passes_within_limit_and_filters_endpoints():
    assert judge(slo(SloMetric.ERROR_RATE, max=0.6, endpoints="POST /api/events"), standard_record()).status is SloStatus.PASS
    # the read endpoint is clean during the fault; a bare name matches any method
    result = judge(slo(SloMetric.ERROR_RATE, max=0.0, endpoints=["/api/events/{id}"]), standard_record())
    assert result.status is SloStatus.PASS and result.value == 0.0


def test_error_rate_other_phases_and_min():
    rec = standard_record()
    assert judge(slo(SloMetric.ERROR_RATE, during="recovery", max=0.01), rec).status is SloStatus.FAIL
    assert judge(slo(SloMetric.ERROR_RATE, during="tail", max=0.0), rec).status is SloStatus.PASS
    assert judge(slo(SloMetric.ERROR_RATE, during="baseline", max=0.0), rec).status is SloStatus.PASS


def test_error_rate_zero_traffic_is_not_verifiable():
    rec = standard_record()
    for second in range(int(START) + 30, int(START) + 50):
        del rec.windows[second]
    result = judge(slo(SloMetric.ERROR_RATE, max=0.1), rec)
    assert result.status is SloStatus.NOT_VERIFIABLE
    assert result.message == "no requests to all endpoints during fault (t=30s–50s)"


# -- latency -------------------------------------------------------------------------------------------------------
def test_latency_absolute_and_ratio():
    rec = standard_record()
    absolute = judge(slo(SloMetric.LATENCY, max=0.2, percentile=95, endpoints="POST /api/events"), rec)
    assert absolute.status is SloStatus.FAIL and absolute.value == pytest.approx(0.5) and absolute.unit == "s"
    assert "p95 500 ms of POST /api/events during fault (t=30s–50s): limit 200 ms, over by 300 ms" in absolute.message
    assert judge(slo(SloMetric.LATENCY, max=1.0, endpoints="POST /api/events"), rec).status is SloStatus.PASS
    ratio = judge(slo(SloMetric.LATENCY, max_ratio=3, percentile=99, endpoints="POST /api/events"), rec)
    assert ratio.status is SloStatus.FAIL and ratio.value == pytest.approx(25.0) and ratio.unit == "x"
    assert "25.00x baseline 20 ms, limit 3x" in ratio.message
    assert judge(slo(SloMetric.LATENCY, max_ratio=30, endpoints="POST /api/events"), rec).status is SloStatus.PASS


def test_percentile_is_nearest_rank_over_buckets():
    assert stats.percentile_ms({10: 95, 1000: 5}, 0.95) == 10.0
    assert stats.percentile_ms({10: 94, 1000: 6}, 0.95) == 1000.0
    assert stats.percentile_ms({}, 0.95) is None


# -- throughput_drop -----------------------------------------------------------------------------------------------
def test_throughput_drop():
    rec = standard_record()
    failed = judge(slo(SloMetric.THROUGHPUT_DROP, max=0.5, endpoints="POST /api/events"), rec)
    assert failed.status is SloStatus.FAIL and failed.value == pytest.approx(0.8)
    assert "2.0 req/s vs baseline 10.0 req/s: a drop of 80.0%" in failed.message
    assert judge(slo(SloMetric.THROUGHPUT_DROP, max=0.9, endpoints="POST /api/events"), rec).status is SloStatus.PASS


def test_throughput_ignores_ramp_up_before_the_first_request():
    rec = standard_record()
    for t in range(0, 10):  # load started at t=10: the baseline rate is still 10 req/s, not 6.7
        del rec.windows[int(START) + t]
    result = judge(slo(SloMetric.THROUGHPUT_DROP, max=0.9, endpoints="POST /api/events"), rec)
    assert result.details["baseline_rps"] == pytest.approx(10.0)


# -- no baseline (first fault at t=0) ------------------------------------------------------------------------------
def test_no_baseline_relative_slos_not_verifiable_absolute_ones_work():
    plan = make_plan(faults=[(0.0, 20.0, "pause", "broker")])
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=60.0)
    fill(rec, 0, 20, fail=0.5, latency_ms=400)
    fill(rec, 20, 60)
    inject(rec, "f0#1", 0.0)
    revert(rec, "f0#1", 20.0)
    phases = derive_phases(rec, plan)
    assert [p.phase for p in phases] == [Phase.FAULT, Phase.RECOVERY, Phase.TAIL]
    expect = "no baseline: the first fault starts at t=0s, so there is no steady state to compare with (start faults after some load, e.g. at: 30s)"
    for spec in (slo(SloMetric.LATENCY, max_ratio=2), slo(SloMetric.THROUGHPUT_DROP, max=0.5),
                 slo(SloMetric.RECOVERY_TIME, max=30), slo(SloMetric.DETECTION_TIME, via="errors", max=5),
                 slo(SloMetric.BLAST_RADIUS, endpoints="GET /x")):
        result = evaluate_slo(spec, rec, phases, plan)
        assert result.status is SloStatus.NOT_VERIFIABLE, spec
        assert result.message == expect
    assert evaluate_slo(slo(SloMetric.ERROR_RATE, max=0.1), rec, phases, plan).status is SloStatus.FAIL
    assert evaluate_slo(slo(SloMetric.LATENCY, max=0.1), rec, phases, plan).status is SloStatus.FAIL
    assert evaluate_slo(slo(SloMetric.LATENCY, max=1.0), rec, phases, plan).status is SloStatus.PASS


# -- detection_time ------------------------------------------------------------------------------------------------
def test_detection_via_errors():
    rec = standard_record()
    result = judge(slo(SloMetric.DETECTION_TIME, via="errors", max=5), rec)
    assert result.status is SloStatus.PASS
    assert result.value == pytest.approx(1.0)  # the first erroring second (30-31) is known at its end
    assert result.details["occurrences"][0]["detected_t"] == pytest.approx(31.0)


def test_detection_never_detected_fails():
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=120.0)
    fill(rec, 0, 120)  # the fault changed nothing clients could see
    inject(rec, "f0#1", 30.0)
    revert(rec, "f0#1", 50.0)
    result = judge(slo(SloMetric.DETECTION_TIME, via="errors", max=5), rec)
    assert result.status is SloStatus.FAIL and result.value is None
    assert result.message.startswith("not detected within the fault window (+recovery) by errors on all endpoints")
    assert "f0#1 (pause broker) injected at t=30.0s" in result.message


def _health_samples(rec: Record, unhealthy: range, name: str = "health") -> None:
    for t in range(0, int(rec.end_t)):
        rec.add_probe(ProbeSample(t + 0.5, START + t + 0.5, name, t not in unhealthy, 503.0 if t in unhealthy else 200.0))


def test_detection_via_probe():
    rec = standard_record()
    _health_samples(rec, range(36, 52))
    probes = {"health": ProbeSpec("health", ProbeKind.HTTP, 1.0, {"url": "http://127.0.0.1:1/health"})}
    spec_fast = slo(SloMetric.DETECTION_TIME, via="health", max=5)
    spec_slow = slo(SloMetric.DETECTION_TIME, via="health", max=10)
    plan = make_plan(slos=[spec_fast, spec_slow], probes=probes)
    fast, slow = evaluate(plan, rec).results
    assert fast.status is SloStatus.FAIL and fast.value == pytest.approx(6.5)
    assert "worst detection 6.5s by probe 'health' for f0#1 (pause broker) injected at t=30.0s, limit 5.0s, over by 1.5s" == fast.message
    assert slow.status is SloStatus.PASS


def test_detection_via_alerts_probe_and_no_prometheus():
    rec = standard_record()
    probes = {"alerts": ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS, 5.0, {"url": "http://127.0.0.1:9/"})}
    for t in range(0, 120, 5):
        rec.add_probe(ProbeSample(t, START + t, "alerts", True, None, {"firing": ["KafkaDown"] if 40 <= t < 60 else []}))
    spec = slo(SloMetric.DETECTION_TIME, via="alerts", max=15)
    assert judge(spec, rec, make_plan(slos=[spec], probes=probes)).value == pytest.approx(10.0)
    blind = standard_record()
    for t in range(0, 120, 5):
        blind.add_probe(ProbeSample(t, START + t, "alerts", None, None, {"firing": [], "error": "no Prometheus URL"}))
    result = judge(spec, blind, make_plan(slos=[spec], probes=probes))
    assert result.status is SloStatus.NOT_VERIFIABLE
    assert result.message == "no Prometheus configured: probe 'alerts' could not read alerts"


# -- recovery_time -------------------------------------------------------------------------------------------------
def test_recovery_time_pass_and_fail():
    rec = standard_record(recover_at=55)
    ok = judge(slo(SloMetric.RECOVERY_TIME, max=10), rec)
    assert ok.status is SloStatus.PASS and ok.value == pytest.approx(5.0)
    assert ok.details["occurrences"][0]["recovered_t"] == pytest.approx(55.0)
    late = judge(slo(SloMetric.RECOVERY_TIME, max=3), rec)
    assert late.status is SloStatus.FAIL and "over by 2.0s" in late.message


def test_recovery_needs_latency_back_too():
    rec = standard_record(recover_at=55)
    fill(rec, 55, 70, latency_ms=200)  # errors gone at 55, but p95 200 ms > 1.5 x 20 + 50 = 80 ms until 70
    result = judge(slo(SloMetric.RECOVERY_TIME, max=60), rec)
    assert result.value == pytest.approx(20.0)


def test_never_recovered_fails_with_none():
    rec = standard_record(recover_at=120)  # errors continue until the end
    result = judge(slo(SloMetric.RECOVERY_TIME, max=30), rec)
    assert result.status is SloStatus.FAIL and result.value is None
    assert result.message == ("did not recover: f0#1 (pause broker): not back in the baseline band by the end of "
                              "the run, limit 30.0s")


def test_short_clean_stretch_at_the_end_is_not_recovery():
    rec = standard_record(recover_at=117)  # only 3 clean seconds before the end; 5 are required
    result = judge(slo(SloMetric.RECOVERY_TIME, max=100), rec)
    assert result.status is SloStatus.FAIL
    assert "(longest stretch within the band: 3s of the 5s required)" in result.message


def test_zero_traffic_seconds_are_not_recovered():
    rec = standard_record(recover_at=55)
    for t in range(55, 75):  # the system stopped serving: nothing answered at all
        del rec.windows[int(START) + t]
    result = judge(slo(SloMetric.RECOVERY_TIME, max=60, endpoints="POST /api/events"), rec)
    assert result.value == pytest.approx(25.0)


def test_run_stopped_during_the_fault():
    rec = standard_record()
    rec.events = [e for e in rec.events if e.kind is FaultEventKind.INJECTED]
    rec.end_t = 45.0
    result = judge(slo(SloMetric.RECOVERY_TIME, max=30), rec)
    assert result.status is SloStatus.FAIL and result.value is None
    assert result.message.startswith("did not recover: run ended during the fault (f0#1 (pause broker)")


def test_recovery_is_measured_from_the_end_of_overlapping_faults():
    plan = make_plan(faults=[(30.0, 20.0, "pause", "broker"), (40.0, 20.0, "latency", "api")])
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=120.0)
    fill(rec, 0, 30)
    fill(rec, 30, 62, fail=0.5)
    fill(rec, 62, 120)
    inject(rec, "f0#1", 30.0)
    inject(rec, "f1#1", 40.0, "latency", "api")
    revert(rec, "f0#1", 50.0)
    revert(rec, "f1#1", 60.0, "latency", "api")
    spec = slo(SloMetric.RECOVERY_TIME, max=5)
    result = evaluate_slo(spec, rec, derive_phases(rec, plan), plan)
    assert result.status is SloStatus.PASS and result.value == pytest.approx(2.0)
    first = result.details["occurrences"][0]
    assert first["note"] == "measured from the end of the overlapping faults at t=60.0s"


def test_recovery_before_the_next_fault():
    plan = make_plan(faults=[(30.0, 10.0, "pause", "broker"), (60.0, 10.0, "pause", "broker")])
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=120.0)
    fill(rec, 0, 30)
    fill(rec, 30, 70, fail=0.5)  # never recovered between the two faults
    fill(rec, 70, 120)
    inject(rec, "f0#1", 30.0)
    revert(rec, "f0#1", 40.0)
    inject(rec, "f1#1", 60.0)
    revert(rec, "f1#1", 70.0)
    result = evaluate_slo(slo(SloMetric.RECOVERY_TIME, max=30), rec, derive_phases(rec, plan), plan)
    assert result.status is SloStatus.FAIL
    assert "f0#1 (pause broker): not back in the baseline band before the next fault at t=60.0s" in result.message


def test_recovery_mann_whitney_waits_for_latency_to_match_baseline():
    rec = standard_record(recover_at=55)
    fill(rec, 55, 70, latency_ms=60)  # within the p95 band (<= 80 ms) but clearly slower than the 20 ms baseline
    band = judge(slo(SloMetric.RECOVERY_TIME, max=60), rec)
    mw = judge(slo(SloMetric.RECOVERY_TIME, max=60, method="mann_whitney"), rec)
    assert band.value == pytest.approx(5.0)
    assert mw.value == pytest.approx(20.0)
    assert mw.details["method"] == "mann_whitney"


def test_mann_whitney_matches_pair_counting():
    rng = random.Random(7)
    a = [rng.choice([10, 11, 12, 13, 15]) for _ in range(40)]
    b = [rng.choice([9, 10, 11, 12]) for _ in range(55)]
    hist_a, hist_b = {}, {}
    for v in a:
        hist_a[v] = hist_a.get(v, 0) + 1
    for v in b:
        hist_b[v] = hist_b.get(v, 0) + 1
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)  # U by definition, independent of ranks
    n1, n2 = len(a), len(b)
    n = n1 + n2
    ties = sum(c**3 - c for c in (a.count(v) + b.count(v) for v in set(a) | set(b)))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    expected = 0.5 * math.erfc(((u - n1 * n2 / 2 - 0.5) / sigma) / math.sqrt(2))
    assert stats.mann_whitney_greater(hist_a, hist_b) == pytest.approx(expected, rel=1e-9)
    assert stats.mann_whitney_greater(hist_a, hist_b) < 0.01
    assert stats.mann_whitney_greater(hist_b, hist_a) > 0.99
    assert stats.mann_whitney_greater({5: 10}, {5: 10}) == 1.0
    assert stats.mann_whitney_greater({}, {5: 1}) is None


# -- lost_writes / duplicates --------------------------------------------------------------------------------------
def test_lost_writes_fail_message_names_the_count():
    rec = standard_record()
    rec.ledger = [LedgerResult("kafka", acknowledged=20000, checked=20000, found=18468, lost=1532),
                  LedgerResult("pipeline", acknowledged=20000, checked=20000, found=20000)]
    result = judge(slo(SloMetric.LOST_WRITES, max=0, check="kafka"), rec)
    assert result.status is SloStatus.FAIL and result.value == 1532
    assert result.message == "1532 acknowledged writes lost (kafka check), limit 0"
    assert result.headline == "lost_writes: 1532 acknowledged writes lost (kafka check), limit 0"
    passed = judge(slo(SloMetric.LOST_WRITES, max=0, check="pipeline"), rec)
    assert passed.status is SloStatus.PASS
    assert passed.message == "0 of 20000 acknowledged writes lost (pipeline check), limit 0"
    assert judge(slo(SloMetric.LOST_WRITES, max=0), rec).value == 1532  # check: all


def test_ledger_unverifiable_or_missing():
    rec = standard_record()
    rec.ledger = [LedgerResult("pipeline", acknowledged=100, verifiable=False, detail="store unreachable")]
    result = judge(slo(SloMetric.LOST_WRITES, max=0, check="pipeline"), rec)
    assert result.status is SloStatus.NOT_VERIFIABLE
    assert result.message == "ledger not verifiable (pipeline: store unreachable)"
    missing = judge(slo(SloMetric.LOST_WRITES, check="kafka"), rec)
    assert missing.message == "no ledger result for the kafka check (checks recorded: pipeline)"


def test_duplicates():
    rec = standard_record()
    rec.ledger = [LedgerResult("pipeline", acknowledged=100, checked=100, found=100, duplicates=3)]
    result = judge(slo(SloMetric.DUPLICATES, max=0), rec)
    assert result.status is SloStatus.FAIL and result.message == "3 acknowledged writes duplicated (pipeline check), limit 0"
    assert judge(slo(SloMetric.DUPLICATES, max=5), rec).status is SloStatus.PASS


# -- alerts_fired --------------------------------------------------------------------------------------------------
ALERT_PROBES = {"alerts": ProbeSpec("alerts", ProbeKind.PROMETHEUS_ALERTS, 5.0, {"url": "http://127.0.0.1:9090"})}


def _alert_samples(rec: Record, firing: dict[str, range], healthy=True) -> None:
    for t in range(0, int(rec.end_t), 5):
        names = [n for n, when in firing.items() if t in when]
        rec.add_probe(ProbeSample(float(t), START + t, "alerts", healthy, float(len(names)), {"firing": names}))


def test_alerts_fired_within():
    rec = standard_record()
    _alert_samples(rec, {"KafkaBrokerDown": range(45, 60)})
    ok = slo(SloMetric.ALERTS_FIRED, alerts=["KafkaBrokerDown"], within=30)
    late = slo(SloMetric.ALERTS_FIRED, alerts=["KafkaBrokerDown"], within=10)
    missing = slo(SloMetric.ALERTS_FIRED, alerts=["KafkaBrokerDown", "HighErrorRate"], within="1m")
    plan = make_plan(slos=[ok, late, missing], probes=ALERT_PROBES)
    r_ok, r_late, r_missing = evaluate(plan, rec).results
    assert r_ok.status is SloStatus.PASS and r_ok.details["alerts"][0]["after_s"] == pytest.approx(15.0)
    assert r_late.status is SloStatus.FAIL
    assert r_late.message == "1 of 1 expected alerts did not fire within 10s of a fault start: KafkaBrokerDown"
    assert r_missing.status is SloStatus.FAIL and r_missing.value == 1
    assert r_missing.message.endswith("did not fire within 1m of a fault start: HighErrorRate")


def test_alerts_without_prometheus_not_verifiable():
    rec = standard_record()
    _alert_samples(rec, {}, healthy=None)
    spec = slo(SloMetric.ALERTS_FIRED, alerts=["KafkaBrokerDown"], within=30)
    result = judge(spec, rec, make_plan(slos=[spec], probes=ALERT_PROBES))
    assert result.status is SloStatus.NOT_VERIFIABLE and result.message == "no Prometheus configured"
    no_probe = judge(spec, standard_record(), make_plan(slos=[spec]))
    assert no_probe.message == "no Prometheus configured: the plan has no prometheus_alerts probe"


def test_silent_failure():
    rec = standard_record()
    _alert_samples(rec, {})
    spec = slo(SloMetric.ALERTS_FIRED, alerts=["HighErrorRate"], within=60, silent_failure=True)
    result = judge(spec, rec, make_plan(slos=[spec], probes=ALERT_PROBES))
    assert result.status is SloStatus.FAIL
    assert result.message.endswith("; silent failure: errors beyond the baseline band in 25 seconds from t=30s, "
                                   "and no alert fired")
    loud = standard_record()
    _alert_samples(loud, {"HighErrorRate": range(35, 60)})
    assert judge(spec, loud, make_plan(slos=[spec], probes=ALERT_PROBES)).status is SloStatus.PASS


# -- health_truthful -----------------------------------------------------------------------------------------------
def test_health_that_lies():
    rec = standard_record()
    _health_samples(rec, range(0, 3))  # healthy during the whole fault, and unhealthy at the very start
    result = judge(slo(SloMetric.HEALTH_TRUTHFUL, probe="health", error_threshold=0.2,
                                endpoints="POST /api/events"), rec)
    assert result.status is SloStatus.FAIL
    assert result.value == 3 + 20 + 5  # 3 s false alarm in baseline, 20 s of the fault and 5 s lingering errors
    kinds = {lie["kind"] for lie in result.details["lies"]}
    assert kinds == {"healthy while failing", "unhealthy during baseline"}
    assert result.message.startswith("health probe 'health' lied in 28 seconds (3 s unhealthy during baseline, "
                                     "25 s healthy while failing; first at t=0s;")


def test_truthful_health_passes():
    rec = standard_record()
    _health_samples(rec, range(30, 55))
    health = ProbeSpec("health", ProbeKind.HTTP, HttpProbe(url="http://127.0.0.1:8000/health", every=1))
    result = judge(slo(SloMetric.HEALTH_TRUTHFUL, probe="health", error_threshold=0.2), rec,
                   make_plan(probes={"health": health}))
    assert result.status is SloStatus.PASS and result.value == 0
    assert judge(slo(SloMetric.HEALTH_TRUTHFUL, probe="health"), standard_record()).message == "probe 'health' has no samples"


# -- blast_radius --------------------------------------------------------------------------------------------------
def test_blast_radius():
    rec = standard_record()
    contained = judge(slo(SloMetric.BLAST_RADIUS, endpoints=["GET /api/events/{id}"]), rec)
    assert contained.status is SloStatus.PASS and contained.value == 0
    fill(rec, 30, 50, rps=5, fail=0.4, key=READ)
    spread = judge(slo(SloMetric.BLAST_RADIUS, endpoints=["GET /api/events/{id}"]), rec)
    assert spread.status is SloStatus.FAIL and spread.value == 1
    assert "GET /api/events/{id}: error rate 40.0% > band 2.0%" in spread.message


# -- data_rejected -------------------------------------------------------------------------------------------------
def test_data_rejected():
    rec = standard_record()
    bad = ("POST", "[chaos] POST /api/events invalid-json")
    fill(rec, 30, 50, rps=3, key=bad)  # failures == 0: every bad payload was refused
    spec = slo(SloMetric.DATA_REJECTED, max_accepted=0)
    assert judge(spec, rec).status is SloStatus.PASS
    fill(rec, 40, 42, rps=3, fail=1.0, key=bad)
    result = judge(spec, rec)
    assert result.status is SloStatus.FAIL and result.value == 6
    assert result.message == "6 of 60 bad payloads accepted instead of rejected, limit 0 (POST /api/events invalid-json: 6)"
    # bad payloads do not count as user traffic in other SLOs
    assert judge(slo(SloMetric.ERROR_RATE, max=0.0, during="baseline"), rec).status is SloStatus.PASS


def test_poison_messages_dead_lettered():
    rec = standard_record()
    rec.meta.update(poison_sent=50, dlq_count=48)
    result = judge(slo(SloMetric.DATA_REJECTED), rec)
    assert result.status is SloStatus.FAIL
    assert result.message == "only 48 of 50 poison messages reached the dead-letter topic"
    rec.meta["dlq_count"] = 50
    assert judge(slo(SloMetric.DATA_REJECTED), rec).status is SloStatus.PASS
    assert judge(slo(SloMetric.DATA_REJECTED), standard_record()).status is SloStatus.NOT_VERIFIABLE


# -- the verdict and its exit code ---------------------------------------------------------------------------------
def test_exit_codes():
    passing = slo(SloMetric.ERROR_RATE, "loose", max=0.9)
    failing = slo(SloMetric.ERROR_RATE, "strict", max=0.01)
    unverifiable = slo(SloMetric.ALERTS_FIRED, "alerts", alerts=["X"], within=60)
    v = evaluate(make_plan(slos=[passing, unverifiable]), standard_record())
    assert v.exit_code == 3 and not v.ok and v.summary["unverified_required"] == ["alerts"]
    assert v.headline == ("1 required SLO(s) not verifiable: alerts (no Prometheus configured: the plan has no "
                          "prometheus_alerts probe)")
    optional = slo(SloMetric.ALERTS_FIRED, "alerts", alerts=["X"], within=60, optional=True)
    v = evaluate(make_plan(slos=[passing, optional]), standard_record())
    assert v.exit_code == 0 and v.ok and v.summary["not_verifiable"] == 1
    assert evaluate(make_plan(slos=[passing, unverifiable]), standard_record(), allow_unverified=True).exit_code == 0
    v = evaluate(make_plan(slos=[passing, failing]), standard_record())
    assert v.exit_code == 3 and not v.ok and v.summary["fail"] == 1
    rec = standard_record()
    revert(rec, "f0#1", 50.5, failed=True)
    v = evaluate(make_plan(slos=[passing]), rec)
    assert v.exit_code == 4 and v.revert_failed
    assert v.summary["revert_failures"][0]["detail"] == "docker unpause: timed out"


def test_empty_record_is_all_not_verifiable():
    specs = [slo(m) for m in SloMetric]
    rec = Record(run_id="r", scenario="x", start_wall=START)
    v = evaluate(make_plan(slos=specs), rec)
    assert v.exit_code == ExitCode.INCOMPLETE and "experiment incomplete: f0#1 (pause broker) not injected" in v.headline
    assert all(r.status is SloStatus.NOT_VERIFIABLE for r in v.results), [(r.name, r.status, r.message) for r in v.results]


def test_fault_outlasting_the_run():
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=45.0)
    fill(rec, 0, 30)
    fill(rec, 30, 45, fail=0.5)
    inject(rec, "f0#1", 30.0)
    plan = make_plan()
    phases = derive_phases(rec, plan)
    assert phases[-1].phase is Phase.FAULT and phases[-1].end_t == 45.0
    assert evaluate_slo(slo(SloMetric.ERROR_RATE, max=0.1), rec, phases, plan).value == pytest.approx(0.5)
    detection = evaluate_slo(slo(SloMetric.DETECTION_TIME, via="errors", max=5), rec, phases, plan)
    assert detection.status is SloStatus.PASS


def test_dry_run_has_no_detection_or_recovery():
    rec = Record(run_id="r", scenario="x", start_wall=START, end_t=120.0)
    fill(rec, 0, 120)
    rec.add_event(FaultEvent(30.0, START + 30, FaultEventKind.PLANNED, "f0#1", "pause", "broker"))
    v = evaluate(make_plan(slos=[slo(SloMetric.RECOVERY_TIME, max=5), slo(SloMetric.DETECTION_TIME, via="errors", max=5)]), rec)
    assert [r.status for r in v.results] == [SloStatus.NOT_VERIFIABLE] * 2
    assert v.results[0].message == "faults were only planned (dry run or no fault events recorded), not injected"


def test_blast_radius_max_ratio_replaces_the_latency_allowance():
    rec = standard_record()
    fill(rec, 30, 50, rps=5, latency_ms=70, key=READ)  # 3.5x the 20 ms baseline, yet inside the default 80 ms band
    spec_band = slo(SloMetric.BLAST_RADIUS, endpoints=["GET /api/events/{id}"])
    spec_ratio = slo(SloMetric.BLAST_RADIUS, endpoints=["GET /api/events/{id}"], max_ratio=2.0)
    assert judge(spec_band, rec).status is SloStatus.PASS
    result = judge(spec_ratio, rec)
    assert result.status is SloStatus.FAIL and "p95 70 ms > band 40 ms" in result.message


def test_endpoint_filter_forms():
    flt = stats.EndpointFilter.parse(["POST /api/events", "/health", "[chaos] POST /api/events invalid-json"])
    assert flt.matches(("POST", "/api/events")) and not flt.matches(("GET", "/api/events"))
    assert flt.matches(("GET", "/health")) and flt.matches(("HEAD", "/health"))
    assert flt.matches(("POST", "[chaos] POST /api/events invalid-json"))
    everything = stats.EndpointFilter.parse(())
    assert everything.is_all and everything.describe() == "all endpoints"
    assert not everything.matches(("POST", "[chaos] POST /api/events invalid-json"))  # harness traffic is left out


def test_per_second_series_is_only_shared_inside_one_evaluation():
    rec = standard_record()
    flt = stats.EndpointFilter()
    before = stats.per_second(rec, flt)[int(START)].count
    fill(rec, 0, 1, rps=100)  # a live record keeps changing: outside memo() the change is seen at once
    assert stats.per_second(rec, flt)[int(START)].count == before - 10 + 100
    with stats.memo():
        first = stats.per_second(rec, flt)
        assert stats.per_second(rec, flt) is first


def test_detection_and_recovery_can_be_scoped_to_targets():
    # Only the consumer fault is judged: the undetected latency fault on another target does not count.
    plan = parse_plan(
        """
name: scoped
targets:
  link: {proxy: {name: kafka}}
  consumer: {host: local}
probes:
  health: {http: {url: "http://127.0.0.1:1/health", every: 1s}}
faults:
  - {at: 10s, for: 5s, fault: latency, target: link, latency_ms: 100}
  - {at: 30s, for: 5s, fault: cpu_burn, target: consumer, cores: 1}
slos:
  - {name: detect-consumer, metric: detection_time, via: health, max: 10s, targets: [consumer]}
  - {name: detect-all, metric: detection_time, via: health, max: 10s}
""", "scoped.yml")
    record = Record("r", "scoped", 1000.0, end_t=60.0)
    for second in range(60):
        record.add_request(1000 + second, "GET", "/x", 5.0, failed=False)
        record.add_probe(ProbeSample(float(second), 1000.0 + second, "health", healthy=not 31 <= second <= 36))
    for t, kind, fid, ftype, target in [(10, "injected", "f0#1", "latency", "link"), (15, "reverted", "f0#1", "latency", "link"),
                                        (30, "injected", "f1#1", "cpu_burn", "consumer"), (35, "reverted", "f1#1", "cpu_burn", "consumer")]:
        record.add_event(FaultEvent(float(t), 1000.0 + t, FaultEventKind(kind), fid, ftype, target))
    results = {r.name: r for r in evaluate(plan, record).results}
    assert results["detect-consumer"].status is SloStatus.PASS and results["detect-consumer"].value == 1.0
    assert results["detect-all"].status is SloStatus.FAIL
