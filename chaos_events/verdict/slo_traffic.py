"""SLO metrics over the load's own requests: error_rate, latency, throughput_drop, blast_radius.

Pure: standard library and pydantic (the parameter models). Each metric's parameters are declared here, next to the
function that judges them.

Example (scenario):
    - {name: ingest-errors, metric: error_rate, during: fault, max: 5%, endpoints: "POST /api/events"}
    - {name: p95-back, metric: latency, during: recovery, percentile: 95, max_ratio: 3}
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import Field, model_validator

from chaos_events.scenario.fields import NonEmptyTextList, Number, Ratio, Seconds, WholeNumber, fail
from chaos_events.scenario.model import Phase, SloMetric, SloSpec
from chaos_events.verdict import stats
from chaos_events.verdict.metrics import (
    During, Endpoints, Judging, MetricParams, metric, not_verifiable, over_by, passed, phase_words, points, result,
)
from chaos_events.verdict.results import SloResult, SloStatus
from chaos_events.verdict.stats import Agg, Band, EndpointFilter, ms, pct

MaxRatio = Annotated[Ratio, Field(ge=0, le=1, description="upper limit, a ratio (0.05) or a percentage (5%)")]


class ErrorRateParams(MetricParams):
    during: During = Phase.FAULT
    max: MaxRatio
    endpoints: Endpoints = ()


class LatencyParams(MetricParams):
    percentile: Number = Field(95.0, ge=50, le=99.9, description="which percentile, 50 to 99.9")
    during: During = Phase.FAULT
    endpoints: Endpoints = ()
    max_s: Seconds | None = Field(None, alias="max", description="absolute limit (e.g. 800ms)")
    max_ratio: Number | None = Field(None, gt=0, description="limit as a multiple of the baseline's percentile")

    @model_validator(mode="after")
    def _a_limit(self) -> "LatencyParams":
        if self.max_s is None and self.max_ratio is None:
            raise fail("missing key 'max' or 'max_ratio' (an absolute limit, a ratio to the baseline, or both)")
        return self


class ThroughputDropParams(MetricParams):
    during: During = Phase.FAULT
    max: MaxRatio
    endpoints: Endpoints = ()


class BlastRadiusParams(MetricParams):
    endpoints: NonEmptyTextList = Field(description="the endpoints that must stay unaffected (independent paths)")
    during: During = Phase.FAULT
    max: WholeNumber = Field(0, ge=0, description="how many of them may leave their baseline band")
    max_ratio: Number | None = Field(None, gt=0, description="p95 allowance as a multiple of each one's baseline "
                                                             "(replaces the band's default)")


def _traffic(spec: SloSpec, run: Judging, phase: Phase, flt: EndpointFilter, unit: str) -> tuple[Any, Agg | None, Any]:
    """(spans, aggregate, None) or (None, None, a not-verifiable result) for a phase's traffic."""
    spans = run.spans(phase)
    if not spans:
        return None, None, not_verifiable(spec, f"the run has no {phase.value} phase", unit)
    agg = stats.agg_over(run.record, run.phases, spans, flt)
    if agg.count == 0:
        return None, None, not_verifiable(spec, f"no requests to {flt.describe()} {phase_words(phase, spans)}", unit)
    return spans, agg, None


@metric(SloMetric.ERROR_RATE, ErrorRateParams, "share of failed requests during a phase")
def error_rate(spec: SloSpec, run: Judging) -> SloResult:
    p: ErrorRateParams = spec.params
    flt = EndpointFilter.parse(p.endpoints)
    spans, agg, unverifiable = _traffic(spec, run, p.during, flt, "ratio")
    if unverifiable:
        return unverifiable
    value = agg.error_rate or 0.0
    details: dict[str, Any] = {"phase": p.during.value, "endpoints": flt.describe(), "requests": agg.count,
                               "failures": agg.failures, "spans": [s.to_dict() for s in spans]}
    base_words = ""
    base = run.baseline(flt) if p.during is not Phase.BASELINE else None
    if base is not None and base.count:
        change = value - (base.error_rate or 0.0)
        details.update(baseline=base.error_rate, change=change)
        base_words = f"; baseline {pct(base.error_rate)} ({change * 100:+.1f} points)"
    message = (f"error rate {pct(value)} ({agg.failures} of {agg.count} requests to {flt.describe()}) "
               f"{phase_words(p.during, spans)}, limit {pct(p.max)}{over_by(value, p.max, points)}{base_words}")
    return result(spec, passed(value <= p.max + 1e-12), value, p.max, "ratio", message, details)


@metric(SloMetric.LATENCY, LatencyParams, "a latency percentile during a phase, absolute or as a ratio to the baseline")
def latency(spec: SloSpec, run: Judging) -> SloResult:
    p: LatencyParams = spec.params
    flt = EndpointFilter.parse(p.endpoints)
    q = p.percentile / 100.0
    spans, agg, unverifiable = _traffic(spec, run, p.during, flt, "s")
    if unverifiable:
        return unverifiable
    value_ms = agg.percentile_ms(q)
    base = run.baseline(flt)
    base_ms = base.percentile_ms(q) if base is not None else None
    ratio = value_ms / base_ms if base_ms else None
    details: dict[str, Any] = {"phase": p.during.value, "endpoints": flt.describe(), "percentile": q,
                               "value_ms": value_ms, "requests": agg.count, "baseline_ms": base_ms, "ratio": ratio}
    checks, failed = [], False
    if p.max_s is not None:
        failed = value_ms / 1000.0 > p.max_s + 1e-12
        checks.append(f"limit {ms(p.max_s * 1000)}" + (f", over by {ms(value_ms - p.max_s * 1000)}" if failed else ""))
    if p.max_ratio is not None:
        if base_ms is None:
            why = run.no_baseline_message() if base is None else "no baseline: no requests during the baseline"
            if p.max_s is None:
                return not_verifiable(spec, why, "x", details)
            checks.append(f"ratio to baseline not verifiable ({why})")
        else:
            failed = failed or ratio > p.max_ratio + 1e-12
            checks.append(f"{ratio:.2f}x baseline {ms(base_ms)}, limit {p.max_ratio:g}x")
    if p.max_s is not None:
        value, limit, unit = value_ms / 1000.0, p.max_s, "s"
    else:
        value, limit, unit = ratio, p.max_ratio, "x"
    message = f"p{p.percentile:g} {ms(value_ms)} of {flt.describe()} {phase_words(p.during, spans)}: " + "; ".join(checks)
    return result(spec, passed(not failed), value, limit, unit, message, details)


@metric(SloMetric.THROUGHPUT_DROP, ThroughputDropParams, "how far the request rate fell from the baseline's")
def throughput_drop(spec: SloSpec, run: Judging) -> SloResult:
    p: ThroughputDropParams = spec.params
    flt = EndpointFilter.parse(p.endpoints)
    spans = run.spans(p.during)
    if not spans:
        return not_verifiable(spec, f"the run has no {p.during.value} phase", "ratio")
    base_spans = run.spans(Phase.BASELINE)
    if not base_spans:
        return not_verifiable(spec, run.no_baseline_message(), "ratio")
    base_rps = stats.rps_over(run.record, run.phases, base_spans, flt)
    if not base_rps:
        return not_verifiable(spec, f"no requests to {flt.describe()} during the baseline", "ratio")
    rps = stats.rps_over(run.record, run.phases, spans, flt) or 0.0
    value = 1.0 - rps / base_rps
    message = (f"throughput of {flt.describe()} {phase_words(p.during, spans)} {rps:.1f} req/s vs baseline "
               f"{base_rps:.1f} req/s: a drop of {pct(value)}, limit {pct(p.max)}{over_by(value, p.max, points)}")
    return result(spec, passed(value <= p.max + 1e-12), value, p.max, "ratio", message,
                  {"phase": p.during.value, "rps": rps, "baseline_rps": base_rps, "endpoints": flt.describe()})


@metric(SloMetric.BLAST_RADIUS, BlastRadiusParams, "independent endpoints that must stay within their baseline band")
def blast_radius(spec: SloSpec, run: Judging) -> SloResult:
    p: BlastRadiusParams = spec.params
    flt = EndpointFilter.parse(p.endpoints)
    spans, baseline_spans = run.spans(p.during), run.spans(Phase.BASELINE)
    if not spans:
        return not_verifiable(spec, f"the run has no {p.during.value} phase", "endpoints")
    if not baseline_spans:
        return not_verifiable(spec, run.no_baseline_message(), "endpoints")
    base = stats.per_endpoint(run.record, flt, baseline_spans)
    during = stats.per_endpoint(run.record, flt, spans)
    if not base and not during:
        return not_verifiable(spec, f"no requests matched endpoints {flt.describe()}", "endpoints")
    out_of_band, checked, skipped = [], [], []
    for key in sorted(set(base) | set(during)):
        name = f"{key[0]} {key[1]}"
        if key not in base or base[key].count == 0:
            skipped.append(f"{name} (no baseline traffic)")
            continue
        band = Band.of(base[key])
        if p.max_ratio is not None and band.baseline_p95_ms is not None:
            band = dataclasses.replace(band, p95_max_ms=p.max_ratio * band.baseline_p95_ms)
        agg = during.get(key, Agg())
        why = band.why_not(agg)
        checked.append({"endpoint": name, "requests": agg.count, "error_rate": agg.error_rate,
                        "p95_ms": agg.percentile_ms(stats.BAND_PERCENTILE), "band": band.to_dict(), "ok": not why})
        if why:
            out_of_band.append(f"{name}: {why}")
    details = {"phase": p.during.value, "endpoints": checked, "skipped": skipped}
    if not checked:
        return not_verifiable(spec, "no declared endpoint had baseline traffic: " + ", ".join(skipped), "endpoints", details)
    value, where = float(len(out_of_band)), phase_words(p.during, spans)
    if value > p.max:
        return result(spec, SloStatus.FAIL, value, p.max, "endpoints",
                      f"{len(out_of_band)} of {len(checked)} independent endpoints left their baseline band {where}: "
                      + "; ".join(out_of_band) + f", limit {p.max:g}", details)
    return result(spec, SloStatus.PASS, value, p.max, "endpoints",
                  f"{len(checked)} independent endpoints stayed within their baseline band {where}", details)
