"""Request rates over phase spans, from per-second counts, without bias at the edges of the load.

Pure module: standard library only. No gevent, locust, docker, prometheus_client; no clock. verdict.stats calls it
with a filter's per-second counts (`stats.rps_over`, `stats.phase_stats`).

Windows are whole wall seconds, but the load neither starts nor stops on a second boundary, and it ramps up first.
Three rules keep a constant load at the same rate in every phase (tests/unit/test_rates.py):
- the load's extent is [first, last] of the traffic, where the first window starts no earlier than the run's start
  (t=0: Locust spawns no user before test_start) and the last one ends no later than the load's stop
  (`meta["load_stop_t"]`, Locust's test_stopping, recorded by the wiring) or the run's end (`end_t`), whichever is
  first. A window's requests are spread over the part of it inside that extent only, so the run's first and last
  partial seconds are neither diluted (counted whole) nor under-weighted (cut by the span), and an idle moment
  between the load's stop and the run's end is not read as a drop;
- the ramp-up is left out of rates: from `meta["ramp_end_t"]` (Locust's spawning_complete, recorded by the wiring)
  to the next window boundary, so no window that mixes ramp and full load is counted. A phase that lies wholly in
  the ramp-up is rated on it all the same (there is nothing else);
- a window cut by a phase boundary counts in each phase in proportion to the time it spends there.

Example:
    rps(record, [(6.0, 12.0)], {1006: 100, 1007: 100})   # requests per second over run time [6, 12)
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from chaos_events.record import Record

Interval = tuple[float, float]


def load_extent(record: Record, counts: Mapping[int, float]) -> Interval | None:
    """Run-time extent of the traffic in `counts` ({wall second: requests}), clamped to the run; None when none."""
    seconds = sorted(s for s, n in counts.items() if n > 0)
    if not seconds:
        return None
    lo = max(0.0, record.t_of(seconds[0]))
    hi = record.t_of(seconds[-1]) + 1.0
    for bound in (record.end_t, record.meta.get("load_stop_t")):
        if isinstance(bound, (int, float)):
            hi = min(hi, float(bound))
    return (lo, hi) if hi > lo else None


def steady_from(record: Record) -> float:
    """Run time from which the load is at full strength: the first window boundary at or after the ramp's end."""
    ramp_end = record.meta.get("ramp_end_t")
    if not isinstance(ramp_end, (int, float)) or ramp_end <= 0:
        return 0.0
    return record.t_of(math.ceil(record.start_wall + float(ramp_end) - 1e-9))


def clip(spans: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)]


def rate_intervals(record: Record, spans: Iterable[Interval], extent: Interval) -> list[Interval]:
    """The parts of `spans` a rate is judged over: under load, after the ramp-up (unless that leaves nothing)."""
    spans = list(spans)
    lo, hi = extent
    return clip(spans, max(lo, steady_from(record)), hi) or clip(spans, lo, hi)


def weighted_count(record: Record, intervals: list[Interval], counts: Mapping[int, float], extent: Interval) -> float:
    """Requests inside `intervals`: each window's count spread evenly over its part inside the load's extent."""
    lo, hi = extent
    total = 0.0
    for second, n in counts.items():
        start = record.t_of(second)
        a, b = max(start, lo), min(start + 1.0, hi)
        if b <= a or not n:
            continue  # outside the run (e.g. a request that finished after the load stopped)
        inside = sum(max(0.0, min(e, b) - max(s, a)) for s, e in intervals)
        total += n * inside / (b - a)
    return total


def rps(record: Record, spans: Iterable[Interval], counts: Mapping[int, float]) -> float | None:
    """Requests per second over `spans` (run-time intervals); None when no traffic falls in them."""
    extent = load_extent(record, counts)
    if extent is None:
        return None
    intervals = rate_intervals(record, spans, extent)
    duration = sum(b - a for a, b in intervals)
    if duration <= 0:
        return None
    return weighted_count(record, intervals, counts, extent) / duration
