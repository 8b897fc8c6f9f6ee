"""Stop conditions (`halt_when`): is the run hurting its target enough that it must halt now?

Pure: standard library and the verdict's statistics; the session passes the live record, the probe samples and the
time in, about once a second. A tripped condition makes the session revert every active fault, cancel the rest of
the timeline and (by default) stop the load; the run ends with ExitCode.HALTED and the reports say what tripped.

Example:
    trip = first_trip(plan.halts, record, probe_samples, alert_probes=["alerts"], now_t=42.0, lag_s=1.0)
    trip and trip.message   # "halt_when[0] (error_rate): error rate above 50.0% for 10s on all endpoints ..."
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from chaos_events.record import ProbeSample, Record
from chaos_events.scenario.run_rules import HaltCondition
from chaos_events.verdict.stats import EndpointFilter, ms, pct, recent


@dataclass(frozen=True)
class Trip:
    """A tripped stop condition: which, when (run time), why, and the values that tripped it."""

    condition: HaltCondition
    t: float
    message: str
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"condition": self.condition.label, "kind": self.condition.kind, "t": self.t, "message": self.message,
                "values": self.values}


def _sustained_seconds(record: Record, endpoints: tuple[str, ...], for_s: float, now_t: float, lag_s: float):
    """The last ceil(for_s) complete seconds of traffic (wall second, Agg), oldest first."""
    end = math.floor(record.start_wall + now_t - lag_s)
    return recent(record, EndpointFilter.parse(endpoints), end - max(1, math.ceil(for_s)), end)


def _traffic_trip(condition: HaltCondition, record: Record, now_t: float, lag_s: float) -> Trip | None:
    p = condition.params
    seconds = _sustained_seconds(record, p.endpoints, p.for_s, now_t, lag_s)
    if not seconds or any(agg.count == 0 for _, agg in seconds):
        return None  # a second without traffic proves nothing either way
    where = EndpointFilter.parse(p.endpoints).describe()
    if condition.kind == "error_rate":
        rates = [agg.error_rate or 0.0 for _, agg in seconds]
        if min(rates) <= p.max:
            return None
        return Trip(condition, now_t, f"{condition.label}: error rate above {pct(p.max)} for {len(seconds)}s on {where} "
                                      f"(lowest {pct(min(rates))}, last {pct(rates[-1])})",
                    {"error_rates": rates, "limit": p.max})
    q = p.percentile / 100.0
    values = [agg.percentile_ms(q) or 0.0 for _, agg in seconds]
    if min(values) <= p.max_s * 1000:
        return None
    return Trip(condition, now_t, f"{condition.label}: p{p.percentile:g} above {ms(p.max_s * 1000)} for {len(seconds)}s "
                                  f"on {where} (lowest {ms(min(values))}, last {ms(values[-1])})",
                {"latency_ms": values, "limit_ms": p.max_s * 1000})


def _probe_trip(condition: HaltCondition, samples: Sequence[ProbeSample], now_t: float) -> Trip | None:
    p = condition.params
    mine = sorted((s for s in samples if s.probe == p.probe and s.t <= now_t), key=lambda s: s.t)
    if not mine or mine[-1].healthy is not False:
        return None
    streak_start = mine[-1].t
    for sample in reversed(mine):
        if sample.healthy is not False:
            break
        streak_start = sample.t
    if now_t - streak_start < p.for_s - 1e-9:
        return None
    value = f" (last value {mine[-1].value:g})" if mine[-1].value is not None else ""
    return Trip(condition, now_t, f"{condition.label}: probe {p.probe!r} unhealthy since t={streak_start:.1f}s, "
                                  f"{now_t - streak_start:.0f}s{value}", {"since_t": streak_start})


def _alert_trip(condition: HaltCondition, samples: Sequence[ProbeSample], alert_probes: Iterable[str],
                now_t: float) -> Trip | None:
    p = condition.params
    names = [p.probe] if p.probe else list(alert_probes)
    latest = {}
    for sample in samples:
        if sample.probe in names and sample.t <= now_t and (sample.probe not in latest or sample.t >= latest[sample.probe].t):
            latest[sample.probe] = sample
    wanted = set(p.alerts)
    firing = sorted({str(a) for s in latest.values() for a in (s.detail or {}).get("firing", []) or []
                     if not wanted or str(a) in wanted})
    if not firing:
        return None
    return Trip(condition, now_t, f"{condition.label}: alert firing: {', '.join(firing)}", {"firing": firing})


def first_trip(conditions: Sequence[HaltCondition], record: Record, samples: Sequence[ProbeSample],
               alert_probes: Iterable[str], now_t: float, lag_s: float) -> Trip | None:
    """The first condition (in the scenario's order) that holds now, or None."""
    for condition in conditions:
        if condition.kind in ("error_rate", "latency"):
            trip = _traffic_trip(condition, record, now_t, lag_s)
        elif condition.kind == "probe_failing":
            trip = _probe_trip(condition, samples, now_t)
        else:
            trip = _alert_trip(condition, samples, alert_probes, now_t)
        if trip is not None:
            return trip
    return None
