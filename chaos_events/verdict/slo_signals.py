"""SLO metrics over what the platform says about itself: alerts_fired (the expected Prometheus alerts fired, and no
failure went silent) and health_truthful (the health endpoint agreed with what clients saw).

Pure: standard library and pydantic (the parameter models).

Example (scenario):
    - {name: lag-alert, metric: alerts_fired, alerts: [KafkaConsumerLagHigh], within: 60s, silent_failure: true}
    - {name: honest-health, metric: health_truthful, probe: health, endpoints: "POST /api/events"}
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from chaos_events.scenario.fields import Flag, NonEmptyTextList, Ratio, Seconds, Text, WholeNumber
from chaos_events.scenario.model import Phase, ProbeKind, SloMetric, SloSpec
from chaos_events.scenario.units import format_duration
from chaos_events.verdict import stats
from chaos_events.verdict.metrics import Endpoints, Judging, MetricParams, RefersTo, metric, not_verifiable, result
from chaos_events.verdict.results import SloResult, SloStatus
from chaos_events.verdict.slo_timing import firing, real_occurrences
from chaos_events.verdict.stats import Band, EndpointFilter, pct, secs


class AlertsFiredParams(MetricParams):
    alerts: NonEmptyTextList = Field(description="alert names that must fire (as Prometheus names them)")
    within_s: Seconds = Field(alias="within", description="each must fire this soon after a fault starts")
    silent_failure: Flag = Field(False, description="also fail when errors leave the baseline band and no alert fires")
    probe: Annotated[Text, RefersTo("probe", kinds=(ProbeKind.PROMETHEUS_ALERTS,))] | None = Field(
        None, description="the prometheus_alerts probe to read (default: every such probe, or one made from "
                          "--chaos-prometheus-url)")
    endpoints: Endpoints = ()


class HealthTruthfulParams(MetricParams):
    probe: Annotated[Text, RefersTo("probe", kinds=(ProbeKind.HTTP,))] = Field(
        description="the http probe of the health endpoint")
    endpoints: Endpoints = ()
    error_threshold: Ratio = Field(0.5, ge=0, le=1, description="'failing' means the clients' error rate in a second "
                                                                "is above this; healthy then is a lie")
    max: WholeNumber = Field(0, ge=0, description="seconds the probe may contradict the clients")


def _alert_probe_names(run: Judging) -> list[str]:
    names = [name for name, p in run.plan.probes.items() if p.kind is ProbeKind.PROMETHEUS_ALERTS]
    if names:
        return names
    return sorted({s.probe for s in run.record.probes if "firing" in (s.detail or {})})


def _bad_seconds(run: Judging, flt: EndpointFilter) -> list[int] | None:
    """Seconds outside the baseline phase whose error rate is beyond the baseline band; None without a baseline."""
    base = run.baseline(flt)
    if base is None or base.count == 0:
        return None
    band = Band.of(base)
    baseline_spans = run.spans(Phase.BASELINE)
    return [s for s, agg in sorted(stats.per_second(run.record, flt).items())
            if agg.count and not band.error_ok(agg)
            and not any(b.start_t <= stats.window_mid_t(run.record, s) < b.end_t for b in baseline_spans)]


def _silent_failure(p: AlertsFiredParams, run: Judging, samples: list, fired_any: list[str]) -> tuple[Any, str | None, str]:
    """(details entry, problem or None, note) of the silent-failure check."""
    bad = _bad_seconds(run, EndpointFilter.parse(p.endpoints))
    if bad is None:
        return None, None, "; silent-failure check skipped (no baseline to tell errors from noise)"
    if not bad:
        return {"error_seconds": 0, "alerted": bool(fired_any)}, None, ""
    first_bad_t = run.record.t_of(bad[0])
    alerted = any(firing(s) for s in samples if s.t >= first_bad_t - 1e-9)
    entry = {"error_seconds": len(bad), "first_error_t": first_bad_t, "alerted": alerted}
    problem = None if alerted else (f"silent failure: errors beyond the baseline band in {len(bad)} seconds from "
                                    f"t={first_bad_t:.0f}s, and no alert fired")
    return entry, problem, ""


# The value of alerts_fired: how many expected alerts did not fire ("0 alerts missing" is a pass).
MISSING_ALERTS = "alerts missing"


@metric(SloMetric.ALERTS_FIRED, AlertsFiredParams, "the expected Prometheus alerts fired during each fault")
def alerts_fired(spec: SloSpec, run: Judging) -> SloResult:
    p: AlertsFiredParams = spec.params
    expected = list(p.alerts)
    names = [p.probe] if p.probe else _alert_probe_names(run)
    shown = {"expected": expected, "fired": [], "alerts": [], "within_s": p.within_s, "probes": names}
    if not names:
        return not_verifiable(spec, "no Prometheus configured: the plan has no prometheus_alerts probe", MISSING_ALERTS, shown)
    samples = sorted((s for s in run.record.probes if s.probe in names), key=lambda s: s.t)
    if not samples:
        return not_verifiable(spec, f"no Prometheus configured: probe {', '.join(names)} has no samples", MISSING_ALERTS, shown)
    if all(s.healthy is None for s in samples):
        why = next((str(s.detail.get("error")) for s in samples if (s.detail or {}).get("error")), "")
        reason = "no Prometheus configured" + (f" ({why})" if why and why != "no Prometheus configured" else "")
        return not_verifiable(spec, reason, MISSING_ALERTS, shown)
    occurrences, why_none = real_occurrences(run)
    if not occurrences:
        return not_verifiable(spec, f"{why_none}, so no alert was expected to fire", MISSING_ALERTS, shown)
    fired_any = sorted({n for s in samples for n in firing(s)})
    per_alert, missing = [], []
    for alert in expected:
        hit = None
        for occ in occurrences:
            first = next((s for s in samples if occ.start_t - 1e-9 <= s.t <= occ.start_t + p.within_s
                          and alert in firing(s)), None)
            if first is not None and (hit is None or first.t - occ.start_t < hit[1]):
                hit = (occ, first.t - occ.start_t)
        per_alert.append({"alert": alert, "fired": hit is not None,
                          "after_fault": hit[0].fault_id if hit else None, "after_s": hit[1] if hit else None})
        if hit is None:
            missing.append(alert)
    details: dict[str, Any] = {"expected": expected, "fired": fired_any, "alerts": per_alert,
                               "within_s": p.within_s, "probes": names}
    window_words = f"within {format_duration(p.within_s)} of a fault start"
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} expected alerts did not fire {window_words}: {', '.join(missing)}")
    silent_note = ""
    if p.silent_failure:
        details["silent_failure"], problem, silent_note = _silent_failure(p, run, samples, fired_any)
        if problem:
            problems.append(problem)
    value = float(len(missing))
    if problems:
        return result(spec, SloStatus.FAIL, value, 0.0, MISSING_ALERTS, "; ".join(problems) + silent_note, details)
    fired_words = ", ".join(f"{a['alert']} after {secs(a['after_s'])}" for a in per_alert)
    return result(spec, SloStatus.PASS, value, 0.0, MISSING_ALERTS,
                  f"all {len(expected)} expected alerts fired {window_words} ({fired_words}){silent_note}", details)


def _lies(samples: list, series: dict, baseline_spans: list, threshold: float) -> list[dict]:
    """Seconds in which the probe contradicted the clients: healthy while failing, or unhealthy in the baseline."""
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
    return [lies[k] for k in sorted(lies)]


@metric(SloMetric.HEALTH_TRUTHFUL, HealthTruthfulParams, "the health probe agreed with what the clients saw")
def health_truthful(spec: SloSpec, run: Judging) -> SloResult:
    p: HealthTruthfulParams = spec.params
    flt = EndpointFilter.parse(p.endpoints)
    samples = sorted(run.record.probe_samples(p.probe), key=lambda s: s.t)
    if not samples:
        return not_verifiable(spec, f"probe {p.probe!r} has no samples", "seconds")
    if all(s.healthy is None for s in samples):
        return not_verifiable(spec, f"probe {p.probe!r} never gave an answer (healthy unknown in every sample)", "seconds")
    listed = _lies(samples, stats.per_second(run.record, flt), run.spans(Phase.BASELINE), p.error_threshold)
    value = float(len(listed))
    details = {"probe": p.probe, "endpoints": flt.describe(), "error_threshold": p.error_threshold,
               "samples": len(samples), "lies": listed[:100], "lies_total": len(listed)}
    if value > p.max:
        kinds: dict[str, int] = {}
        for lie in listed:
            kinds[lie["kind"]] = kinds.get(lie["kind"], 0) + 1
        what = ", ".join(f"{n} s {k}" for k, n in kinds.items())
        return result(spec, SloStatus.FAIL, value, p.max, "seconds",
                      f"health probe {p.probe!r} lied in {len(listed)} seconds ({what}; first at t={listed[0]['t']:.0f}s; "
                      f"failing means error rate of {flt.describe()} above {pct(p.error_threshold)}), limit {p.max:g}",
                      details)
    return result(spec, SloStatus.PASS, value, p.max, "seconds",
                  f"health probe {p.probe!r} matched what clients saw in {len(samples)} samples "
                  f"({len(listed)} lying seconds, limit {p.max:g})", details)
