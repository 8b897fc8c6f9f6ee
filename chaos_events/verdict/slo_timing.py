"""SLO metrics over time: detection_time (how soon a fault was noticed) and recovery_time (how soon traffic was back
within its baseline band after the fault ended).

Pure: standard library and pydantic (the parameter models).

Example (scenario):
    - {name: detected, metric: detection_time, via: health, max: 30s}       # or via: errors, or an alerts probe
    - {name: recovered, metric: recovery_time, max: 30s, targets: [broker]}
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from chaos_events.record import Record
from chaos_events.scenario.fields import Seconds, Text, TextList, choice
from chaos_events.scenario.model import ProbeKind, SloMetric, SloSpec
from chaos_events.verdict import stats
from chaos_events.verdict.metrics import (
    Endpoints, FaultTargets, Judging, MetricParams, RefersTo, metric, not_verifiable, passed, result,
)
from chaos_events.verdict.phases import Occurrence, fault_occurrences, merged_fault_spans, run_end
from chaos_events.verdict.results import SloResult, SloStatus
from chaos_events.verdict.stats import Agg, Band, ms, pct, secs

RecoveryMethod = choice("band", "mann_whitney")


class DetectionTimeParams(MetricParams):
    via: Annotated[Text, RefersTo("probe", also=("errors",))] = Field(
        description="what notices the fault: a declared probe (an http probe turning unhealthy, an alerts probe "
                    "firing) or `errors` (the error rate leaving the baseline band)")
    max_s: Seconds = Field(alias="max", description="longest time from inject to detection")
    targets: FaultTargets = ()
    endpoints: Endpoints = ()
    alerts: TextList = Field((), description="with an alerts probe: only these alerts count (default: any)")


class RecoveryTimeParams(MetricParams):
    max_s: Seconds = Field(alias="max", description="longest time from revert to back-in-band")
    endpoints: Endpoints = ()
    method: RecoveryMethod = Field("band", description="band: error rate and p95 back in the baseline band for "
                                                       "`sustain` seconds; mann_whitney: a rank test of latency instead of p95")
    targets: FaultTargets = ()


def real_occurrences(run: Judging, targets: tuple[str, ...] = ()) -> tuple[list[Occurrence], str]:
    """Injected occurrences (only those on `targets` when given), or ([], why) when there are none."""
    occurrences = fault_occurrences(run.record, run.plan)
    if targets:
        occurrences = [o for o in occurrences if o.target in targets]
    scope = f" on {', '.join(targets)}" if targets else ""
    if not occurrences:
        return [], f"no fault was injected{scope} during the run"
    if all(o.from_plan for o in occurrences):
        return [], f"faults{scope} were only planned (dry run or no fault events recorded), not injected"
    return [o for o in occurrences if not o.from_plan], ""


def firing(sample: Any, wanted: set[str] | None = None) -> list[str]:
    names = [str(n) for n in (sample.detail or {}).get("firing", []) or []]
    return [n for n in names if wanted is None or n in wanted]


def _error_signals(spec: SloSpec, run: Judging) -> tuple[list[tuple[float, str]], str, SloResult | None]:
    flt = stats.EndpointFilter.parse(spec.params.endpoints)
    base = run.baseline(flt)
    if base is None:
        return [], "", not_verifiable(spec, run.no_baseline_message(), "s")
    if base.count == 0:
        return [], "", not_verifiable(spec, f"no requests to {flt.describe()} during the baseline", "s")
    threshold = stats.detection_threshold(base.error_rate or 0.0)
    signals = [(run.record.t_of(second) + 1.0, f"error rate {pct(agg.error_rate)} > {pct(threshold)}")
               # the second's rate is known at its end: the signal time is conservative by up to 1 s
               for second, agg in sorted(stats.per_second(run.record, flt).items())
               if agg.count and (agg.error_rate or 0.0) > threshold]
    return signals, f"errors on {flt.describe()} (threshold {pct(threshold)})", None


def _probe_signals(spec: SloSpec, run: Judging) -> tuple[list[tuple[float, str]], str, SloResult | None]:
    via = spec.params.via
    samples = sorted(run.record.probe_samples(via), key=lambda s: s.t)
    if not samples:
        known = ", ".join(sorted(run.plan.probes)) or "none"
        return [], "", not_verifiable(spec, f"probe {via!r} has no samples (probes in the plan: {known})", "s")
    probe = run.plan.probes.get(via)
    if probe is not None and probe.kind is ProbeKind.PROMETHEUS_ALERTS:
        if all(s.healthy is None for s in samples):
            return [], "", not_verifiable(spec, f"no Prometheus configured: probe {via!r} could not read alerts", "s")
        wanted = set(spec.params.alerts) or None
        signals = [(s.t, "alerts firing: " + ", ".join(firing(s, wanted))) for s in samples if firing(s, wanted)]
    else:
        signals = [(s.t, f"probe {via} unhealthy" + (f" (value {s.value:g})" if s.value is not None else ""))
                   for s in samples if s.healthy is False]
    return signals, f"probe {via!r}", None


@metric(SloMetric.DETECTION_TIME, DetectionTimeParams, "time from a fault's inject until a probe or the error rate saw it")
def detection_time(spec: SloSpec, run: Judging) -> SloResult:
    p: DetectionTimeParams = spec.params
    occurrences, why = real_occurrences(run, p.targets)
    if not occurrences:
        return not_verifiable(spec, why, "s", limit=p.max_s)
    signals, source, unverifiable = (_error_signals if p.via == "errors" else _probe_signals)(spec, run)
    if unverifiable:
        return unverifiable
    end, rw = run_end(run.record), run.plan.settings.recovery_window_s
    per_occ, worst, missed = [], 0.0, []
    for occ in occurrences:
        horizon = min(occ.end_t + rw, end) if occ.closed else end
        hit = next(((t, what) for t, what in signals if occ.start_t - 1e-9 <= t <= horizon), None)
        per_occ.append({"fault_id": occ.fault_id, "fault": occ.describe(), "injected_t": occ.start_t,
                        "detected_t": hit[0] if hit else None, "detection_s": (hit[0] - occ.start_t) if hit else None,
                        "signal": hit[1] if hit else None})
        if hit is None:
            missed.append(occ)
        else:
            worst = max(worst, hit[0] - occ.start_t)
    details = {"via": p.via, "source": source, "occurrences": per_occ}
    if missed:
        names = "; ".join(f"{o.describe()} injected at t={o.start_t:.1f}s" for o in missed)
        return result(spec, SloStatus.FAIL, None, p.max_s, "s",
                      f"not detected within the fault window (+recovery) by {source}: {names}, limit {secs(p.max_s)}", details)
    worst_occ = max(per_occ, key=lambda e: e["detection_s"])
    ok = worst <= p.max_s + 1e-9
    over = f", over by {secs(worst - p.max_s)}" if not ok else ""
    message = (f"worst detection {secs(worst)} by {source} for {worst_occ['fault']} injected at "
               f"t={worst_occ['injected_t']:.1f}s, limit {secs(p.max_s)}{over}")
    return result(spec, passed(ok), worst, p.max_s, "s", message, details)


@metric(SloMetric.RECOVERY_TIME, RecoveryTimeParams, "time from a fault's revert until traffic is back in its baseline band")
def recovery_time(spec: SloSpec, run: Judging) -> SloResult:
    p: RecoveryTimeParams = spec.params
    flt = stats.EndpointFilter.parse(p.endpoints)
    occurrences, why = real_occurrences(run, p.targets)
    if not occurrences:
        return not_verifiable(spec, why, "s", limit=p.max_s)
    base = run.baseline(flt)
    if base is None:
        return not_verifiable(spec, run.no_baseline_message(), "s", limit=p.max_s)
    if base.count == 0:
        return not_verifiable(spec, f"no requests to {flt.describe()} during the baseline", "s", limit=p.max_s)
    band = Band.of(base)
    sustain = max(1, math.ceil(run.plan.settings.sustain_s - 1e-9))
    per_occ, failed = _recoveries(run, occurrences, flt, band, base, sustain, p.method)
    details = {"band": band.to_dict(), "sustain_s": sustain, "method": p.method, "endpoints": flt.describe(),
               "occurrences": per_occ}
    limit_words = f", limit {secs(p.max_s)}"
    if failed:
        shown = "; ".join(f"{o.describe()}: {reason}" for o, reason in failed)
        if all(reason == "run ended during the fault" for _, reason in failed):
            return result(spec, SloStatus.FAIL, None, p.max_s, "s",
                          f"did not recover: run ended during the fault ({shown}){limit_words}", details)
        return result(spec, SloStatus.FAIL, None, p.max_s, "s", f"did not recover: {shown}{limit_words}", details)
    worst_entry = max(per_occ, key=lambda e: e["recovery_s"])
    worst = worst_entry["recovery_s"]
    ok = worst <= p.max_s + 1e-9
    over = f", over by {secs(worst - p.max_s)}" if not ok else ""
    message = (f"worst recovery {secs(worst)} after {worst_entry['fault']} reverted at "
               f"t={worst_entry['measured_from_t']:.1f}s (back within error rate {pct(band.error_rate_max)} and "
               f"p95 {ms(band.p95_max_ms)} for {sustain}s){limit_words}{over}")
    return result(spec, passed(ok), worst, p.max_s, "s", message, details)


def _recoveries(run: Judging, occurrences: list[Occurrence], flt: stats.EndpointFilter, band: Band, base: Agg,
                sustain: int, method: str) -> tuple[list[dict], list[tuple[Occurrence, str]]]:
    """Per occurrence: when traffic was back in the band (overlapping faults are measured from their joint end)."""
    series = stats.per_second(run.record, flt)
    end = run_end(run.record)
    starts = sorted(o.start_t for o in occurrences)
    per_occ: list[dict] = []
    failed: list[tuple[Occurrence, str]] = []
    for _start, stop, members in merged_fault_spans(occurrences):
        if any(not o.closed for o in members):
            for o in members:
                per_occ.append({"fault_id": o.fault_id, "fault": o.describe(), "reverted_t": None,
                                "recovered_t": None, "recovery_s": None, "reason": "run ended during the fault"})
                failed.append((o, "run ended during the fault"))
            continue
        bound = next((s for s in starts if s >= stop), end)
        recovered_t, streak_info = _scan_recovery(run.record, series, band, base, stop, bound, sustain, method)
        for o in members:
            entry = {"fault_id": o.fault_id, "fault": o.describe(), "reverted_t": o.end_t, "measured_from_t": stop,
                     "recovered_t": recovered_t, "recovery_s": None if recovered_t is None else recovered_t - stop}
            if o.end_t < stop:
                entry["note"] = f"measured from the end of the overlapping faults at t={stop:.1f}s"
            if recovered_t is None:
                entry["reason"] = (f"not back in the baseline band before the next fault at t={bound:.1f}s" if bound < end
                                   else "not back in the baseline band by the end of the run") + streak_info
                failed.append((o, entry["reason"]))
            per_occ.append(entry)
    return per_occ, failed


def _scan_recovery(record: Record, series: dict[int, Agg], band: Band, base: Agg, revert_t: float, bound_t: float,
                   sustain: int, method: str) -> tuple[float | None, str]:
    """First run time >= revert_t from which `sustain` consecutive seconds are within the band; (None, why) if never."""
    use_u_test = method == "mann_whitney"
    streak: list[int] = []
    best = 0
    for second in stats.seconds_between(record, revert_t, bound_t):
        agg = series.get(second, Agg())
        streak = streak + [second] if band.error_ok(agg) and (use_u_test or band.p95_ok(agg)) else []
        best = max(best, len(streak))
        if len(streak) >= sustain:
            if use_u_test:
                window = Agg()
                for s in streak[-sustain:]:
                    window.add(series.get(s, Agg()))
                p = stats.mann_whitney_greater(window.hist, base.hist)
                if p is not None and p < stats.MANN_WHITNEY_ALPHA:
                    streak = streak[1:]  # still slower than baseline: slide the window on
                    continue
            return max(revert_t, record.t_of(streak[-sustain])), ""
    return None, (f" (longest stretch within the band: {best}s of the {sustain}s required)" if best else "")
