"""The steady-state gate: does the system look healthy right now, as the scenario's `steady_state` defines it?

Pure: standard library and the verdict's statistics; the session passes the live record, the latest probe samples
and the time in. The engine asks it right before the first fault (and before each fault marked `steady_state:
true`), and waits or gives up as the scenario says.

Example:
    verdict = steady_state_now(plan.steady_state, record, probes_latest, now_wall=time.time(), lag_s=1.0)
    verdict.met or print(verdict.reason)      # "error rate 12.0% over the last 10s of all endpoints, limit 1.0%"
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from chaos_events.record import ProbeSample, Record
from chaos_events.scenario.run_rules import SteadyState
from chaos_events.verdict.stats import Agg, EndpointFilter, ms, pct, recent

FRESH_S = 5.0   # a probe sample older than this (or three periods) says nothing about now


@dataclass(frozen=True)
class SteadyVerdict:
    met: bool
    reason: str = ""


def complete_seconds(now_wall: float, lag_s: float, window_s: float) -> tuple[int, int]:
    """[first, end) wall seconds of the last `window_s` whose traffic has fully arrived (`lag_s`: workers' delay)."""
    end = math.floor(now_wall - lag_s)
    return end - max(1, math.ceil(window_s)), end


def probe_problems(names: tuple[str, ...], latest: Mapping[str, ProbeSample], every_s: Mapping[str, float],
                   now_wall: float) -> list[str]:
    problems = []
    for name in names:
        sample = latest.get(name)
        fresh = max(FRESH_S, 3 * every_s.get(name, 1.0))
        if sample is None or now_wall - sample.wall > fresh:
            problems.append(f"probe {name!r} has no sample from the last {fresh:g}s")
        elif sample.healthy is not True:
            value = f" (value {sample.value:g})" if sample.value is not None else ""
            problems.append(f"probe {name!r} is {'unhealthy' if sample.healthy is False else 'unknown'}{value}")
    return problems


def steady_state_now(rule: SteadyState, record: Record, latest: Mapping[str, ProbeSample],
                     every_s: Mapping[str, float], now_wall: float, lag_s: float) -> SteadyVerdict:
    """Whether the steady state holds now; when not, every reason at once."""
    problems = probe_problems(rule.probes, latest, every_s, now_wall)
    if rule.max_error_rate is not None or rule.max_p95 is not None:
        flt = EndpointFilter.parse(rule.endpoints)
        first, end = complete_seconds(now_wall, lag_s, rule.window_s)
        total = Agg()
        for _, agg in recent(record, flt, first, end):
            total.add(agg)
        where = f"over the last {end - first}s of {flt.describe()}"
        if total.count == 0:
            problems.append(f"no requests {where}")
        else:
            rate = total.error_rate or 0.0
            if rule.max_error_rate is not None and rate > rule.max_error_rate + 1e-12:
                problems.append(f"error rate {pct(rate)} {where}, limit {pct(rule.max_error_rate)}")
            p95 = total.percentile_ms(0.95)
            if rule.max_p95 is not None and p95 is not None and p95 > rule.max_p95 * 1000 + 1e-9:
                problems.append(f"p95 {ms(p95)} {where}, limit {ms(rule.max_p95 * 1000)}")
    return SteadyVerdict(not problems, "; ".join(problems))
