"""The verdict: every SLO of a plan judged against the record of a run, and the exit code that follows.

Pure module: standard library only. No gevent, locust, docker, prometheus_client or scipy; no I/O, no clock.
One function per metric, each pure over (spec, record, phases, plan) and returning one SloResult.

Exit code (ARCHITECTURE section 4): 4 when any fault could not be reverted, else 3 when any SLO failed, else 0.
NOT_VERIFIABLE (no baseline, no Prometheus, no traffic, unverifiable ledger) does not fail the run, but is shown.

Example:
    verdict = evaluate(plan, record)
    verdict.exit_code == 0 and all(r.status is not SloStatus.FAIL for r in verdict.results)
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from chaos_events.scenario.plan import Phase, Plan, ProbeKind, SloMetric, SloSpec
from chaos_events.record import FaultEventKind, ProbeSample, Record
from chaos_events.scenario.units import format_duration, parse_duration
from chaos_events.verdict import stats
from chaos_events.verdict.phases import (
    Occurrence, PhaseSpan, derive_phases, fault_occurrences, merged_fault_spans, run_end,
)
from chaos_events.verdict.stats import Agg, Band, EndpointFilter, ms, pct, secs

EXIT_OK = 0
EXIT_SLO_FAILED = 3
EXIT_REVERT_FAILED = 4

DEFAULT_PERCENTILE = 0.95
DEFAULT_HEALTH_ERROR_THRESHOLD = 0.5   # health says "healthy" while more than half the requests fail: a lie


class SloStatus(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_VERIFIABLE = "not_verifiable"


@dataclass(frozen=True)
class SloResult:
    """The judgement of one SLO. `message` says what, when and by how much; `details` is JSON-serialisable.

    Example: SloResult("no-loss", SloMetric.LOST_WRITES, SloStatus.FAIL, 1532, 0, "writes",
                       "1532 acknowledged writes lost (kafka check), limit 0", {...})
    """

    name: str
    metric: SloMetric
    status: SloStatus
    value: float | None
    limit: float | None
    unit: str
    message: str
    details: dict = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """`metric: message`, the form of the JUnit failure message."""
        return f"{self.metric.value}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "metric": self.metric.value, "status": self.status.value, "value": self.value,
            "limit": self.limit, "unit": self.unit, "message": self.message, "details": self.details,
        }


@dataclass(frozen=True)
class Verdict:
    """All SLO results of a run plus the exit code. Invariant: exit_code follows from results and revert_failed."""

    results: tuple[SloResult, ...]
    exit_code: int
    revert_failed: bool
    summary: dict

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "exit_code": self.exit_code, "revert_failed": self.revert_failed,
            "summary": self.summary, "results": [r.to_dict() for r in self.results],
        }


# -- shared helpers ----------------------------------------------------------------------------------------------
def _result(spec: SloSpec, status: SloStatus, value: float | None, limit: float | None, unit: str, message: str,
            details: dict | None = None) -> SloResult:
    return SloResult(spec.name, spec.metric, status, value, limit, unit, message, dict(details or {}))


def _not_verifiable(spec: SloSpec, message: str, unit: str = "", details: dict | None = None) -> SloResult:
    return _result(spec, SloStatus.NOT_VERIFIABLE, None, _number(spec.params.get("max")), unit, message, details)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def _seconds(value: Any) -> float | None:
    """A duration parameter: the loader gives float seconds, but a raw '30s' is accepted too."""
    return None if value is None else parse_duration(value)


def _phase_param(spec: SloSpec, default: Phase) -> Phase:
    value = spec.params.get("during", default)
    return value if isinstance(value, Phase) else Phase(str(value).lower())


def _percentile_param(spec: SloSpec) -> float:
    value = spec.params.get("percentile", DEFAULT_PERCENTILE)
    if isinstance(value, str):
        value = float(value.lower().lstrip("p"))
    value = float(value)
    return value / 100.0 if value > 1 else value


def _filter(spec: SloSpec) -> EndpointFilter:
    return EndpointFilter.parse(spec.params.get("endpoints"))


def _when(spans: list[PhaseSpan]) -> str:
    shown = [f"t={s.start_t:.0f}s–{s.end_t:.0f}s" for s in spans[:3]]
    more = f", +{len(spans) - 3} more" if len(spans) > 3 else ""
    return ", ".join(shown) + more


def _phase_words(phase: Phase, spans: list[PhaseSpan]) -> str:
    if phase is Phase.ALL:
        return "over the whole run"
    return f"during {phase.value} ({_when(spans)})"


def _spans(phases: list[PhaseSpan], phase: Phase) -> list[PhaseSpan]:
    return stats.spans_of(phases, phase)


def _baseline(record: Record, phases: list[PhaseSpan], flt: EndpointFilter) -> Agg | None:
    """Baseline traffic, or None when the run had no baseline phase at all (first fault at t=0)."""
    spans = _spans(phases, Phase.BASELINE)
    if not spans:
        return None
    return stats.agg_over(record, phases, spans, flt)


def _no_baseline_message(phases: list[PhaseSpan]) -> str:
    if not phases:
        return "no baseline: the run recorded nothing"
    return (f"no baseline: the first fault starts at t={phases[0].start_t:.0f}s, so there is no steady state to "
            "compare with (start faults after some load, e.g. at: 30s)")


def _limits(spec: SloSpec) -> tuple[float | None, float | None]:
    return _number(spec.params.get("max")), _number(spec.params.get("min"))


def _judge(value: float, max_: float | None, min_: float | None) -> bool:
    if max_ is not None and value > max_ + 1e-12:
        return False
    if min_ is not None and value < min_ - 1e-12:
        return False
    return True


def _limit_words(max_: float | None, min_: float | None, fmt: Callable[[float | None], str]) -> str:
    parts = []
    if max_ is not None:
        parts.append(f"limit {fmt(max_)}")
    if min_ is not None:
        parts.append(f"minimum {fmt(min_)}")
    return ", ".join(parts) or "no limit set"


def _points(delta: float | None) -> str:
    """A difference of two ratios, in percentage points (not a relative %)."""
    return "n/a" if delta is None else f"{delta * 100:.1f} points"


def _by_how_much(value: float, max_: float | None, min_: float | None, fmt: Callable[[float | None], str]) -> str:
    if max_ is not None and value > max_:
        return f", over by {fmt(value - max_)}"
    if min_ is not None and value < min_:
        return f", under by {fmt(min_ - value)}"
    return ""


def _real_occurrences(record: Record, plan: Plan, targets: tuple[str, ...] = ()) -> tuple[list[Occurrence], str]:
    """Injected occurrences (only those on `targets` when given), or ([], why) when there are none."""
    occurrences = fault_occurrences(record, plan)
    if targets:
        occurrences = [o for o in occurrences if o.target in targets]
    scope = f" on {', '.join(targets)}" if targets else ""
    if not occurrences:
        return [], f"no fault was injected{scope} during the run"
    if all(o.from_plan for o in occurrences):
        return [], f"faults{scope} were only planned (dry run or no fault events recorded), not injected"
    return [o for o in occurrences if not o.from_plan], ""


# -- per-metric functions ----------------------------------------------------------------------------------------
def slo_error_rate(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    phase = _phase_param(spec, Phase.FAULT)
    flt = _filter(spec)
    max_, min_ = _limits(spec)
    spans = _spans(phases, phase)
    if not spans:
        return _not_verifiable(spec, f"the run has no {phase.value} phase", "ratio")
    agg = stats.agg_over(record, phases, spans, flt)
    if agg.count == 0:
        return _not_verifiable(spec, f"no requests to {flt.describe()} {_phase_words(phase, spans)}", "ratio")
    value = agg.error_rate or 0.0
    details: dict[str, Any] = {"phase": phase.value, "endpoints": flt.describe(), "requests": agg.count,
                               "failures": agg.failures, "spans": [s.to_dict() for s in spans]}
    base_words = ""
    base = _baseline(record, phases, flt) if phase is not Phase.BASELINE else None
    if base is not None and base.count:
        change = value - (base.error_rate or 0.0)
        details.update(baseline=base.error_rate, change=change)
        base_words = f"; baseline {pct(base.error_rate)} ({change * 100:+.1f} points)"
    ok = _judge(value, max_, min_)
    message = (f"error rate {pct(value)} ({agg.failures} of {agg.count} requests to {flt.describe()}) "
               f"{_phase_words(phase, spans)}, {_limit_words(max_, min_, pct)}{_by_how_much(value, max_, min_, _points)}"
               f"{base_words}")
    return _result(spec, SloStatus.PASS if ok else SloStatus.FAIL, value, max_ if max_ is not None else min_, "ratio",
                   message, details)


def slo_latency(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    phase = _phase_param(spec, Phase.FAULT)
    flt = _filter(spec)
    p = _percentile_param(spec)
    label = f"p{p * 100:g}"
    max_s = _seconds(spec.params.get("max"))
    max_ratio = _number(spec.params.get("max_ratio"))
    spans = _spans(phases, phase)
    if not spans:
        return _not_verifiable(spec, f"the run has no {phase.value} phase", "s")
    agg = stats.agg_over(record, phases, spans, flt)
    value_ms = agg.percentile_ms(p)
    if value_ms is None:
        return _not_verifiable(spec, f"no requests to {flt.describe()} {_phase_words(phase, spans)}", "s")
    details: dict[str, Any] = {"phase": phase.value, "endpoints": flt.describe(), "percentile": p,
                               "value_ms": value_ms, "requests": agg.count}
    base = _baseline(record, phases, flt)
    base_ms = base.percentile_ms(p) if base is not None else None
    ratio = value_ms / base_ms if base_ms else None
    details.update(baseline_ms=base_ms, ratio=ratio)
    where = _phase_words(phase, spans)
    checks, failed = [], False
    if max_s is not None:
        if value_ms / 1000.0 > max_s + 1e-12:
            failed = True
            checks.append(f"limit {ms(max_s * 1000)}, over by {ms(value_ms - max_s * 1000)}")
        else:
            checks.append(f"limit {ms(max_s * 1000)}")
    if max_ratio is not None:
        if base is None or base_ms is None:
            why = _no_baseline_message(phases) if base is None else "no baseline: no requests during the baseline"
            if max_s is None:
                return _not_verifiable(spec, why, "x", details)
            checks.append(f"ratio to baseline not verifiable ({why})")
        else:
            failed = failed or ratio > max_ratio + 1e-12
            checks.append(f"{ratio:.2f}x baseline {ms(base_ms)}, limit {max_ratio:g}x")
    if max_s is None and max_ratio is None:
        checks.append("no limit set")
    if max_s is not None:
        value, limit, unit = value_ms / 1000.0, max_s, "s"
    elif max_ratio is not None:
        value, limit, unit = ratio, max_ratio, "x"
    else:
        value, limit, unit = value_ms / 1000.0, None, "s"
    status = SloStatus.FAIL if failed else SloStatus.PASS
    message = f"{label} {ms(value_ms)} of {flt.describe()} {where}: " + "; ".join(checks)
    return _result(spec, status, value, limit, unit, message, details)


def slo_throughput_drop(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    phase = _phase_param(spec, Phase.FAULT)
    flt = _filter(spec)
    max_, min_ = _limits(spec)
    spans = _spans(phases, phase)
    if not spans:
        return _not_verifiable(spec, f"the run has no {phase.value} phase", "ratio")
    base_spans = _spans(phases, Phase.BASELINE)
    if not base_spans:
        return _not_verifiable(spec, _no_baseline_message(phases), "ratio")
    base_rps = stats.rps_over(record, phases, base_spans, flt)
    if not base_rps:
        return _not_verifiable(spec, f"no requests to {flt.describe()} during the baseline", "ratio")
    rps = stats.rps_over(record, phases, spans, flt) or 0.0
    value = 1.0 - rps / base_rps
    ok = _judge(value, max_, min_)
    message = (f"throughput of {flt.describe()} {_phase_words(phase, spans)} {rps:.1f} req/s vs baseline "
               f"{base_rps:.1f} req/s: a drop of {pct(value)}, {_limit_words(max_, min_, pct)}"
               f"{_by_how_much(value, max_, min_, _points)}")
    return _result(spec, SloStatus.PASS if ok else SloStatus.FAIL, value, max_ if max_ is not None else min_, "ratio",
                   message, {"phase": phase.value, "rps": rps, "baseline_rps": base_rps, "endpoints": flt.describe()})


def _alert_probe_names(plan: Plan, record: Record) -> list[str]:
    names = [name for name, p in plan.probes.items() if p.kind is ProbeKind.PROMETHEUS_ALERTS]
    if names:
        return names
    return sorted({s.probe for s in record.probes if "firing" in (s.detail or {})})


def _is_alert_probe(plan: Plan, name: str, samples: list[ProbeSample]) -> bool:
    if name in plan.probes:
        return plan.probes[name].kind is ProbeKind.PROMETHEUS_ALERTS
    return any("firing" in (s.detail or {}) for s in samples)


def _firing(sample: ProbeSample, wanted: set[str] | None = None) -> list[str]:
    names = [str(n) for n in (sample.detail or {}).get("firing", []) or []]
    return [n for n in names if wanted is None or n in wanted]


def slo_detection_time(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    via = str(spec.params.get("via") or "errors")
    max_ = _seconds(spec.params.get("max"))
    occurrences, why = _real_occurrences(record, plan, tuple(spec.params.get("targets") or ()))
    if not occurrences:
        return _not_verifiable(spec, why, "s")
    end = run_end(record)
    rw = plan.settings.recovery_window_s
    signals: list[tuple[float, str]] = []  # (t, what), sorted
    if via == "errors":
        flt = _filter(spec)
        base = _baseline(record, phases, flt)
        if base is None:
            return _not_verifiable(spec, _no_baseline_message(phases), "s")
        if base.count == 0:
            return _not_verifiable(spec, f"no requests to {flt.describe()} during the baseline", "s")
        threshold = stats.detection_threshold(base.error_rate or 0.0)
        for second, agg in sorted(stats.per_second(record, flt).items()):
            if agg.count and (agg.error_rate or 0.0) > threshold:
                # the second's rate is known at its end: the signal time is conservative by up to 1 s
                signals.append((record.t_of(second) + 1.0, f"error rate {pct(agg.error_rate)} > {pct(threshold)}"))
        source = f"errors on {flt.describe()} (threshold {pct(threshold)})"
    else:
        samples = sorted(record.probe_samples(via), key=lambda s: s.t)
        if not samples:
            known = ", ".join(sorted(plan.probes)) or "none"
            return _not_verifiable(spec, f"probe {via!r} has no samples (probes in the plan: {known})", "s")
        if _is_alert_probe(plan, via, samples):
            if all(s.healthy is None for s in samples):
                return _not_verifiable(spec, f"no Prometheus configured: probe {via!r} could not read alerts", "s")
            wanted = set(spec.params.get("alerts") or []) or None
            signals = [(s.t, "alerts firing: " + ", ".join(_firing(s, wanted))) for s in samples if _firing(s, wanted)]
        else:
            signals = [(s.t, f"probe {via} unhealthy" + (f" (value {s.value:g})" if s.value is not None else ""))
                       for s in samples if s.healthy is False]
        source = f"probe {via!r}"
    per_occ, worst, missed = [], 0.0, []
    for occ in occurrences:
        horizon = min(occ.end_t + rw, end) if occ.closed else end
        hit = next(((t, what) for t, what in signals if occ.start_t - 1e-9 <= t <= horizon), None)
        entry = {"fault_id": occ.fault_id, "fault": occ.describe(), "injected_t": occ.start_t,
                 "detected_t": hit[0] if hit else None, "detection_s": (hit[0] - occ.start_t) if hit else None,
                 "signal": hit[1] if hit else None}
        per_occ.append(entry)
        if hit is None:
            missed.append(occ)
        else:
            worst = max(worst, hit[0] - occ.start_t)
    details = {"via": via, "source": source, "occurrences": per_occ}
    limit_words = f", limit {secs(max_)}" if max_ is not None else ""
    if missed:
        names = "; ".join(f"{o.describe()} injected at t={o.start_t:.1f}s" for o in missed)
        return _result(spec, SloStatus.FAIL, None, max_, "s",
                       f"not detected within the fault window (+recovery) by {source}: {names}{limit_words}", details)
    worst_occ = max(per_occ, key=lambda e: e["detection_s"])
    ok = max_ is None or worst <= max_ + 1e-9
    over = f", over by {secs(worst - max_)}" if not ok else ""
    message = (f"worst detection {secs(worst)} by {source} for {worst_occ['fault']} injected at "
               f"t={worst_occ['injected_t']:.1f}s{limit_words}{over}")
    return _result(spec, SloStatus.PASS if ok else SloStatus.FAIL, worst, max_, "s", message, details)


def slo_recovery_time(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    max_ = _seconds(spec.params.get("max"))
    flt = _filter(spec)
    method = str(spec.params.get("method") or "band").lower()
    occurrences, why = _real_occurrences(record, plan, tuple(spec.params.get("targets") or ()))
    if not occurrences:
        return _not_verifiable(spec, why, "s")
    base = _baseline(record, phases, flt)
    if base is None:
        return _not_verifiable(spec, _no_baseline_message(phases), "s")
    if base.count == 0:
        return _not_verifiable(spec, f"no requests to {flt.describe()} during the baseline", "s")
    band = Band.of(base)
    sustain = max(1, math.ceil(plan.settings.sustain_s - 1e-9))
    series = stats.per_second(record, flt)
    end = run_end(record)
    starts = sorted(o.start_t for o in occurrences)
    per_occ, worst, failed = [], 0.0, []
    for start, stop, members in merged_fault_spans(occurrences):
        open_ = [o for o in members if not o.closed]
        if open_:
            for o in members:
                per_occ.append({"fault_id": o.fault_id, "fault": o.describe(), "reverted_t": None,
                                "recovered_t": None, "recovery_s": None, "reason": "run ended during the fault"})
                failed.append((o, "run ended during the fault"))
            continue
        bound = next((s for s in starts if s >= stop), end)
        recovered_t, streak_info = _scan_recovery(record, series, band, base, stop, bound, sustain, method)
        for o in members:
            entry = {"fault_id": o.fault_id, "fault": o.describe(), "reverted_t": o.end_t, "measured_from_t": stop,
                     "recovered_t": recovered_t, "recovery_s": None if recovered_t is None else recovered_t - stop}
            if o.end_t < stop:
                entry["note"] = f"measured from the end of the overlapping faults at t={stop:.1f}s"
            if recovered_t is None:
                reason = (f"not back in the baseline band before the next fault at t={bound:.1f}s" if bound < end
                          else "not back in the baseline band by the end of the run") + streak_info
                entry["reason"] = reason
                failed.append((o, reason))
            else:
                worst = max(worst, recovered_t - stop)
            per_occ.append(entry)
    details = {"band": band.to_dict(), "sustain_s": sustain, "method": method, "endpoints": flt.describe(),
               "occurrences": per_occ}
    limit_words = f", limit {secs(max_)}" if max_ is not None else ""
    if failed:
        shown = "; ".join(f"{o.describe()}: {reason}" for o, reason in failed)
        if all(reason == "run ended during the fault" for _, reason in failed):
            return _result(spec, SloStatus.FAIL, None, max_, "s",
                           f"did not recover: run ended during the fault ({shown}){limit_words}", details)
        return _result(spec, SloStatus.FAIL, None, max_, "s", f"did not recover: {shown}{limit_words}", details)
    worst_entry = max(per_occ, key=lambda e: e["recovery_s"])
    ok = max_ is None or worst <= max_ + 1e-9
    over = f", over by {secs(worst - max_)}" if not ok else ""
    message = (f"worst recovery {secs(worst)} after {worst_entry['fault']} reverted at "
               f"t={worst_entry['measured_from_t']:.1f}s (back within error rate {pct(band.error_rate_max)} and "
               f"p95 {ms(band.p95_max_ms)} for {sustain}s){limit_words}{over}")
    return _result(spec, SloStatus.PASS if ok else SloStatus.FAIL, worst, max_, "s", message, details)


def _scan_recovery(record: Record, series: dict[int, Agg], band: Band, base: Agg, revert_t: float, bound_t: float,
                   sustain: int, method: str) -> tuple[float | None, str]:
    """First run time >= revert_t from which `sustain` consecutive seconds are within the band; (None, why) if never."""
    seconds = stats.seconds_between(record, revert_t, bound_t)
    use_u_test = method == "mann_whitney"
    streak: list[int] = []
    best = 0
    for second in seconds:
        agg = series.get(second, Agg())
        if band.error_ok(agg) and (use_u_test or band.p95_ok(agg)):
            streak.append(second)
        else:
            streak = []
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


def _ledger_slo(spec: SloSpec, record: Record, attr: str, noun: str) -> SloResult:
    check = str(spec.params.get("check") or "all").lower()
    max_ = _number(spec.params.get("max"))
    limit = 0.0 if max_ is None else max_
    results = [r for r in record.ledger if check == "all" or r.check == check]
    if not record.ledger:
        return _not_verifiable(spec, "no ledger results recorded (no acknowledged writes were tracked)", "writes")
    if not results:
        have = ", ".join(sorted({r.check for r in record.ledger})) or "none"
        return _not_verifiable(spec, f"no ledger result for the {check} check (checks recorded: {have})", "writes")
    verifiable = [r for r in results if r.verifiable]
    unverifiable = [r for r in results if not r.verifiable]
    value = sum(getattr(r, attr) for r in verifiable)
    checks = ", ".join(r.check for r in verifiable)
    details = {"check": check, "ledger": [
        {"check": r.check, "acknowledged": r.acknowledged, "checked": r.checked, "found": r.found, "lost": r.lost,
         "duplicates": r.duplicates, "verifiable": r.verifiable, "detail": r.detail} for r in results]}
    acknowledged = sum(r.acknowledged for r in verifiable)
    checked = sum(r.checked for r in verifiable)
    sampled = f", {checked} of {acknowledged} checked" if checked and checked < acknowledged else ""
    if verifiable and value > limit:
        extra = ("; not verifiable: " + "; ".join(f"{r.check}: {r.detail or 'unverifiable'}" for r in unverifiable)
                 if unverifiable else "")
        return _result(spec, SloStatus.FAIL, value, limit, "writes",
                       f"{value:g} acknowledged writes {noun} ({checks} check{sampled}), limit {limit:g}{extra}", details)
    if unverifiable:
        why = "; ".join(f"{r.check}: {r.detail or 'unverifiable'}" for r in unverifiable)
        return _not_verifiable(spec, f"ledger not verifiable ({why})", "writes", details)
    return _result(spec, SloStatus.PASS, value, limit, "writes",
                   f"{value:g} of {acknowledged} acknowledged writes {noun} ({checks} check{sampled}), limit {limit:g}",
                   details)


def slo_lost_writes(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    return _ledger_slo(spec, record, "lost", "lost")


def slo_duplicates(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    return _ledger_slo(spec, record, "duplicates", "duplicated")


def _bad_seconds(record: Record, phases: list[PhaseSpan], flt: EndpointFilter) -> list[int] | None:
    """Seconds outside the baseline phase whose error rate is beyond the baseline band; None without a baseline."""
    base = _baseline(record, phases, flt)
    if base is None or base.count == 0:
        return None
    band = Band.of(base)
    baseline_spans = _spans(phases, Phase.BASELINE)
    return [s for s, agg in sorted(stats.per_second(record, flt).items())
            if agg.count and not band.error_ok(agg)
            and not any(b.start_t <= stats.window_mid_t(record, s) < b.end_t for b in baseline_spans)]


def slo_alerts_fired(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    expected = [str(a) for a in (spec.params.get("alerts") or [])]
    within = _seconds(spec.params.get("within"))
    silent = bool(spec.params.get("silent_failure", False))
    probe = spec.params.get("probe")
    names = [str(probe)] if probe else _alert_probe_names(plan, record)
    shown = {"expected": expected, "fired": [], "alerts": [], "within_s": within, "probes": names}
    if not names:
        return _not_verifiable(spec, "no Prometheus configured: the plan has no prometheus_alerts probe", "alerts", shown)
    samples = sorted((s for s in record.probes if s.probe in names), key=lambda s: s.t)
    if not samples:
        return _not_verifiable(spec, f"no Prometheus configured: probe {', '.join(names)} has no samples", "alerts", shown)
    if all(s.healthy is None for s in samples):
        why = next((str(s.detail.get("error")) for s in samples if (s.detail or {}).get("error")), "")
        reason = "no Prometheus configured" + (f" ({why})" if why and why != "no Prometheus configured" else "")
        return _not_verifiable(spec, reason, "alerts", shown)
    occurrences, why_none = _real_occurrences(record, plan)
    if expected and not occurrences:
        return _not_verifiable(spec, f"{why_none}, so no alert was expected to fire", "alerts", shown)
    rw = plan.settings.recovery_window_s
    fired_any = sorted({n for s in samples for n in _firing(s)})
    per_alert, missing = [], []
    for alert in expected:
        hit = None
        for occ in occurrences:
            horizon = occ.start_t + within if within is not None else occ.end_t + rw
            first = next((s for s in samples if occ.start_t - 1e-9 <= s.t <= horizon and alert in _firing(s)), None)
            if first is not None and (hit is None or first.t - occ.start_t < hit[1]):
                hit = (occ, first.t - occ.start_t)
        per_alert.append({"alert": alert, "fired": hit is not None,
                          "after_fault": hit[0].fault_id if hit else None, "after_s": hit[1] if hit else None})
        if hit is None:
            missing.append(alert)
    details: dict[str, Any] = {"expected": expected, "fired": fired_any, "alerts": per_alert,
                               "within_s": within, "probes": names}
    window_words = f"within {format_duration(within)} of a fault start" if within is not None else "during a fault or its recovery"
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} expected alerts did not fire {window_words}: {', '.join(missing)}")
    silent_note = ""
    if silent:
        bad = _bad_seconds(record, phases, EndpointFilter.parse(spec.params.get("endpoints")))
        if bad is None:
            silent_note = "; silent-failure check skipped (no baseline to tell errors from noise)"
            details["silent_failure"] = None
        elif bad:
            first_bad_t = record.t_of(bad[0])
            alerted = any(_firing(s) for s in samples if s.t >= first_bad_t - 1e-9)
            details["silent_failure"] = {"error_seconds": len(bad), "first_error_t": first_bad_t, "alerted": alerted}
            if not alerted:
                problems.append(f"silent failure: errors beyond the baseline band in {len(bad)} seconds from "
                                f"t={first_bad_t:.0f}s, and no alert fired")
        else:
            details["silent_failure"] = {"error_seconds": 0, "alerted": bool(fired_any)}
    value = float(len(missing))
    if problems:
        return _result(spec, SloStatus.FAIL, value, 0.0, "alerts", "; ".join(problems) + silent_note, details)
    if not expected and silent and details.get("silent_failure") is None:
        return _not_verifiable(spec, "silent-failure check needs a baseline; no alerts were expected", "alerts", details)
    fired_words = (", ".join(f"{a['alert']} after {secs(a['after_s'])}" for a in per_alert)
                   if per_alert else "no alerts were expected")
    return _result(spec, SloStatus.PASS, value, 0.0, "alerts",
                   f"all {len(expected)} expected alerts fired {window_words} ({fired_words})" if expected
                   else f"{fired_words}; alerts fired: {', '.join(fired_any) or 'none'}" + silent_note, details)


def slo_health_truthful(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    probe = spec.params.get("probe")
    if not probe:
        http = [name for name, p in plan.probes.items() if p.kind is ProbeKind.HTTP]
        probe = http[0] if http else "health"
    probe = str(probe)
    flt = _filter(spec)
    threshold = _number(spec.params.get("error_threshold"))
    threshold = DEFAULT_HEALTH_ERROR_THRESHOLD if threshold is None else threshold
    max_ = _number(spec.params.get("max"))
    limit = 0.0 if max_ is None else max_
    samples = sorted(record.probe_samples(probe), key=lambda s: s.t)
    if not samples:
        return _not_verifiable(spec, f"probe {probe!r} has no samples", "seconds")
    if all(s.healthy is None for s in samples):
        return _not_verifiable(spec, f"probe {probe!r} never gave an answer (healthy unknown in every sample)", "seconds")
    series = stats.per_second(record, flt)
    baseline_spans = _spans(phases, Phase.BASELINE)
    lies: dict[int, dict] = {}
    for s in samples:
        second = math.floor(s.wall)
        if s.healthy is True:
            agg = series.get(second)
            if agg is not None and agg.count and (agg.error_rate or 0.0) > threshold:
                lies.setdefault(second, {"t": round(s.t, 3), "kind": "healthy while failing",
                                         "error_rate": agg.error_rate, "requests": agg.count})
        elif s.healthy is False and any(b.start_t <= s.t < b.end_t for b in baseline_spans):
            lies.setdefault(second, {"t": round(s.t, 3), "kind": "unhealthy during baseline", "value": s.value,
                                     "detail": s.detail})
    listed = [lies[k] for k in sorted(lies)]
    value = float(len(listed))
    details = {"probe": probe, "endpoints": flt.describe(), "error_threshold": threshold, "samples": len(samples),
               "lies": listed[:100], "lies_total": len(listed)}
    if value > limit:
        kinds = {}
        for lie in listed:
            kinds[lie["kind"]] = kinds.get(lie["kind"], 0) + 1
        what = ", ".join(f"{n} s {k}" for k, n in kinds.items())
        return _result(spec, SloStatus.FAIL, value, limit, "seconds",
                       f"health probe {probe!r} lied in {len(listed)} seconds ({what}; first at t={listed[0]['t']:.0f}s; "
                       f"failing means error rate of {flt.describe()} above {pct(threshold)}), limit {limit:g}", details)
    return _result(spec, SloStatus.PASS, value, limit, "seconds",
                   f"health probe {probe!r} matched what clients saw in {len(samples)} samples "
                   f"({len(listed)} lying seconds, limit {limit:g})", details)


def slo_blast_radius(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    flt = _filter(spec)
    phase = _phase_param(spec, Phase.FAULT)
    max_ = _number(spec.params.get("max"))
    max_ratio = _number(spec.params.get("max_ratio"))
    limit = 0.0 if max_ is None else max_
    if flt.is_all:
        return _not_verifiable(spec, "no independent endpoints declared (set endpoints: [...])", "endpoints")
    spans = _spans(phases, phase)
    if not spans:
        return _not_verifiable(spec, f"the run has no {phase.value} phase", "endpoints")
    baseline_spans = _spans(phases, Phase.BASELINE)
    if not baseline_spans:
        return _not_verifiable(spec, _no_baseline_message(phases), "endpoints")
    base = stats.per_endpoint(record, flt, baseline_spans)
    during = stats.per_endpoint(record, flt, spans)
    if not base and not during:
        return _not_verifiable(spec, f"no requests matched endpoints {flt.describe()}", "endpoints")
    out_of_band, checked, skipped = [], [], []
    for key in sorted(set(base) | set(during)):
        name = f"{key[0]} {key[1]}"
        if key not in base or base[key].count == 0:
            skipped.append(f"{name} (no baseline traffic)")
            continue
        band = Band.of(base[key])
        if max_ratio is not None and band.baseline_p95_ms is not None:
            # an explicit latency ratio replaces the band's default p95 allowance
            band = dataclasses.replace(band, p95_max_ms=max_ratio * band.baseline_p95_ms)
        agg = during.get(key, Agg())
        why = band.why_not(agg)
        entry = {"endpoint": name, "requests": agg.count, "error_rate": agg.error_rate,
                 "p95_ms": agg.percentile_ms(stats.BAND_PERCENTILE), "band": band.to_dict(), "ok": not why}
        checked.append(entry)
        if why:
            out_of_band.append(f"{name}: {why}")
    details = {"phase": phase.value, "endpoints": checked, "skipped": skipped}
    if not checked:
        return _not_verifiable(spec, "no declared endpoint had baseline traffic: " + ", ".join(skipped), "endpoints", details)
    value = float(len(out_of_band))
    where = _phase_words(phase, spans)
    if value > limit:
        return _result(spec, SloStatus.FAIL, value, limit, "endpoints",
                       f"{len(out_of_band)} of {len(checked)} independent endpoints left their baseline band {where}: "
                       + "; ".join(out_of_band) + f", limit {limit:g}", details)
    return _result(spec, SloStatus.PASS, value, limit, "endpoints",
                   f"{len(checked)} independent endpoints stayed within their baseline band {where}", details)


def slo_data_rejected(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    raw_max = spec.params.get("max_accepted", spec.params.get("max"))
    limit = 0.0 if raw_max is None else float(raw_max)
    totals = {key: w for key, w in record.totals().items() if key[1].startswith(stats.CHAOS_PREFIX)}
    sent = sum(w.count for w in totals.values())
    accepted = sum(w.failures for w in totals.values())  # the sender reports a rejection as success
    poison_sent = record.meta.get("poison_sent")
    dlq_count = record.meta.get("dlq_count")
    if not sent and poison_sent is None:
        return _not_verifiable(spec, "no bad payloads were sent (no '[chaos] ' requests, no poison_sent)", "requests")
    per_kind = [{"endpoint": f"{k[0]} {k[1]}", "sent": w.count, "accepted": w.failures} for k, w in sorted(totals.items())]
    details: dict[str, Any] = {"sent": sent, "accepted": accepted, "max_accepted": limit, "kinds": per_kind,
                               "poison_sent": poison_sent, "dlq_count": dlq_count}
    problems, notes = [], []
    if sent:
        words = f"{accepted} of {sent} bad payloads accepted instead of rejected, limit {limit:g}"
        if accepted > limit:
            worst = [f"{k[1][len(stats.CHAOS_PREFIX):]}: {w.failures}" for k, w in sorted(totals.items()) if w.failures]
            problems.append(words + " (" + "; ".join(worst) + ")")
        else:
            notes.append(words)
    if poison_sent is not None:
        if dlq_count is None:
            notes.append(f"{poison_sent} poison messages sent; dead-letter count unknown")
        elif dlq_count < poison_sent:
            problems.append(f"only {dlq_count} of {poison_sent} poison messages reached the dead-letter topic")
        else:
            notes.append(f"{dlq_count} of {poison_sent} poison messages dead-lettered")
    status = SloStatus.FAIL if problems else SloStatus.PASS
    return _result(spec, status, float(accepted), limit, "requests", "; ".join(problems + notes), details)


SLO_FUNCTIONS: Mapping[SloMetric, Callable[[SloSpec, Record, list[PhaseSpan], Plan], SloResult]] = {
    SloMetric.ERROR_RATE: slo_error_rate,
    SloMetric.LATENCY: slo_latency,
    SloMetric.THROUGHPUT_DROP: slo_throughput_drop,
    SloMetric.DETECTION_TIME: slo_detection_time,
    SloMetric.RECOVERY_TIME: slo_recovery_time,
    SloMetric.LOST_WRITES: slo_lost_writes,
    SloMetric.DUPLICATES: slo_duplicates,
    SloMetric.ALERTS_FIRED: slo_alerts_fired,
    SloMetric.HEALTH_TRUTHFUL: slo_health_truthful,
    SloMetric.BLAST_RADIUS: slo_blast_radius,
    SloMetric.DATA_REJECTED: slo_data_rejected,
}


def evaluate_slo(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    return SLO_FUNCTIONS[spec.metric](spec, record, phases, plan)


def exit_code_for(results: list[SloResult] | tuple[SloResult, ...], revert_failed: bool) -> int:
    if revert_failed:
        return EXIT_REVERT_FAILED
    if any(r.status is SloStatus.FAIL for r in results):
        return EXIT_SLO_FAILED
    return EXIT_OK


def evaluate(plan: Plan, record: Record) -> Verdict:
    """Judge every SLO of `plan` against `record`."""
    phases = derive_phases(record, plan)
    with stats.memo():
        results = tuple(evaluate_slo(spec, record, phases, plan) for spec in plan.slos)
    revert_failures = [e for e in record.events if e.kind is FaultEventKind.REVERT_FAILED]
    inject_failures = [e for e in record.events if e.kind is FaultEventKind.INJECT_FAILED]
    revert_failed = bool(revert_failures)
    code = exit_code_for(results, revert_failed)
    counts = {status.value: sum(1 for r in results if r.status is status) for status in SloStatus}
    summary = {
        "scenario": plan.name, "run_id": record.run_id, "slos": len(results), **counts,
        "revert_failures": [{"fault_id": e.fault_id, "fault": f"{e.fault_type} {e.target}", "t": e.t, "detail": e.detail}
                            for e in revert_failures],
        "inject_failures": [{"fault_id": e.fault_id, "fault": f"{e.fault_type} {e.target}", "t": e.t, "detail": e.detail}
                            for e in inject_failures],
        "duration_s": run_end(record),
    }
    return Verdict(results, code, revert_failed, summary)
