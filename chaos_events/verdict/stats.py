"""Aggregation over the run record: endpoint filters, per-second series, per-phase totals, percentiles, the
baseline band and a small Mann-Whitney U test.

Pure module: standard library only. No gevent, locust, docker, prometheus_client, and no scipy (the core must
install without it). Everything here reads a Record and the phase spans; nothing is cached between calls.

Time model: request windows are keyed by whole wall-clock second. A window covers run time
[t_of(second), t_of(second) + 1) and, for counts, error rates and percentiles, belongs to the phase that holds its
midpoint. Rates (requests per second) spread a window over the phases it overlaps instead (verdict/rates.py).

Example:
    flt = EndpointFilter.parse("POST /api/events")
    agg = phase_agg(record, phases, Phase.FAULT, flt)
    agg.error_rate, agg.percentile_ms(0.95)
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from chaos_events.scenario.model import Phase
from chaos_events.record import EndpointWindow, Record, WindowKey
from chaos_events.verdict import rates
from chaos_events.verdict.phases import PhaseSpan

# Bad payloads sent by the data faults are named "[chaos] METHOD path kind". They are the harness's own traffic,
# deliberately wrong, so they are left out of "all endpoints" unless a filter names them explicitly.
CHAOS_PREFIX = "[chaos] "

# -- the baseline band: how far from baseline still counts as normal ---------------------------------------------
# Error rate: baseline plus the larger of 2 points or twice the baseline rate. A clean 0% baseline tolerates 2%
# noise; a noisy 5% baseline tolerates up to 15%.
BAND_ERROR_ABS = 0.02
BAND_ERROR_REL = 2.0
# p95: 1.5x the baseline p95 plus 50 ms, so a fast 5 ms baseline is not held to an unreachable 7.5 ms.
BAND_P95_FACTOR = 1.5
BAND_P95_SLACK_MS = 50.0
BAND_PERCENTILE = 0.95
# detection "via errors": a second is a signal when its error rate exceeds max(3x baseline, baseline + 5 points).
DETECT_ERROR_FACTOR = 3.0
DETECT_ERROR_ABS = 0.05
# recovery "method: mann_whitney": recovery-window latencies slower than baseline at this significance = not back.
MANN_WHITNEY_ALPHA = 0.01

_METHOD = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class EndpointFilter:
    """Which endpoints an SLO looks at. Entries are "METHOD name" or a bare "name"; no entries means all user
    endpoints (everything but the harness's own "[chaos] " traffic).

    Example: EndpointFilter.parse(["POST /api/events", "/health"]).matches(("GET", "/health")) is True
    """

    entries: tuple[tuple[str | None, str], ...] = ()
    raw: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any) -> "EndpointFilter":
        if value is None or value == "" or value == [] or value == ():
            return cls()
        items = [value] if isinstance(value, str) else list(value)
        entries = []
        for item in items:
            text = str(item).strip()
            head, _, rest = text.partition(" ")
            entries.append((head, rest.strip()) if rest and _METHOD.match(head) else (None, text))
        return cls(tuple(entries), tuple(str(i).strip() for i in items))

    @property
    def is_all(self) -> bool:
        return not self.entries

    def matches(self, key: WindowKey) -> bool:
        method, name = key
        if not self.entries:
            return not name.startswith(CHAOS_PREFIX)
        for want_method, want_name in self.entries:
            if want_name == name and (want_method is None or want_method == method):
                return True
        # a bare entry may also be a full name that itself contains spaces ("[chaos] POST /x invalid-json")
        return name in self.raw or f"{method} {name}" in self.raw

    def describe(self) -> str:
        return ", ".join(self.raw) if self.raw else "all endpoints"


@dataclass
class Agg:
    """Requests summed over some windows. `hist` maps a latency bucket in ms to a count."""

    count: int = 0
    failures: int = 0
    hist: dict[int, int] = field(default_factory=dict)

    def add(self, window: EndpointWindow | "Agg") -> None:
        self.count += window.count
        self.failures += window.failures
        source = window.latency_ms if isinstance(window, EndpointWindow) else window.hist
        for bucket, n in source.items():
            self.hist[bucket] = self.hist.get(bucket, 0) + n

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.count if self.count else None

    def percentile_ms(self, p: float) -> float | None:
        return percentile_ms(self.hist, p)


def percentile_ms(hist: dict[int, int], p: float) -> float | None:
    """The smallest bucket at or below which a fraction `p` of the requests fall (nearest rank, like Locust)."""
    total = sum(hist.values())
    if total <= 0:
        return None
    need = max(1, math.ceil(p * total - 1e-9))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= need:
            return float(bucket)
    return float(max(hist))


# -- record geometry ---------------------------------------------------------------------------------------------
def window_mid_t(record: Record, second: int) -> float:
    return record.t_of(second) + 0.5


# Within one `memo()` block (one verdict), the per-second series of a filter is computed once and shared by every
# SLO. Outside it nothing is cached, because a live record keeps changing.
_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("chaos_verdict_memo", default=None)


@contextlib.contextmanager
def memo():
    """Share per-second series between the SLOs of one evaluation. The record must not change inside the block."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def per_second(record: Record, flt: EndpointFilter) -> dict[int, Agg]:
    """Matching traffic summed per wall second; seconds without matching traffic are absent. Treat as read-only."""
    cache = _MEMO.get()
    if cache is not None:
        key = (id(record), flt)
        if key not in cache:
            cache[key] = _per_second(record, flt)
        return cache[key]
    return _per_second(record, flt)


def _per_second(record: Record, flt: EndpointFilter) -> dict[int, Agg]:
    out: dict[int, Agg] = {}
    for second, per_key in record.windows.items():
        agg = None
        for key, window in per_key.items():
            if flt.matches(key):
                if agg is None:
                    agg = out[second] = Agg()
                agg.add(window)
    return out


def recent(record: Record, flt: EndpointFilter, first_second: int, end_second: int) -> list[tuple[int, Agg]]:
    """Matching traffic of each wall second in [first_second, end_second), in order; an empty Agg when none.

    For the live checks (steady state, stop conditions): they read a few recent seconds, never the whole record.
    """
    out = []
    for second in range(first_second, end_second):
        agg = Agg()
        for key, window in (record.windows.get(second) or {}).items():
            if flt.matches(key):
                agg.add(window)
        out.append((second, agg))
    return out


def per_endpoint(record: Record, flt: EndpointFilter, spans: Iterable[PhaseSpan]) -> dict[WindowKey, Agg]:
    """Matching traffic per endpoint, over the windows whose midpoint lies in one of `spans`."""
    spans = list(spans)
    out: dict[WindowKey, Agg] = {}
    for second, per_key in record.windows.items():
        if not _in_spans(spans, window_mid_t(record, second)):
            continue
        for key, window in per_key.items():
            if flt.matches(key):
                out.setdefault(key, Agg()).add(window)
    return out


def seconds_between(record: Record, start_t: float, end_t: float) -> list[int]:
    """Wall seconds whose window midpoint lies in [start_t, end_t), in order, including seconds without traffic."""
    first = math.ceil(record.start_wall + start_t - 0.5 - 1e-9)
    last = math.ceil(record.start_wall + end_t - 0.5 - 1e-9)  # exclusive
    return list(range(first, max(first, last)))


def spans_of(phases: Iterable[PhaseSpan], phase: Phase) -> list[PhaseSpan]:
    return [s for s in phases if phase is Phase.ALL or s.phase is phase]


def _in_spans(spans: list[PhaseSpan], t: float) -> bool:
    return any(s.start_t <= t < s.end_t for s in spans)


def _clamp_mid(record: Record, phases: list[PhaseSpan], second: int) -> float:
    """A window's midpoint, pulled into the run so the half-second around start and end still counts."""
    mid = window_mid_t(record, second)
    if not phases:
        return mid
    return min(max(mid, phases[0].start_t), phases[-1].end_t - 1e-9)


def agg_over(record: Record, phases: list[PhaseSpan], spans: list[PhaseSpan], flt: EndpointFilter) -> Agg:
    out = Agg()
    for second, agg in per_second(record, flt).items():
        if _in_spans(spans, _clamp_mid(record, phases, second)):
            out.add(agg)
    return out


def phase_agg(record: Record, phases: list[PhaseSpan], phase: Phase, flt: EndpointFilter) -> Agg:
    return agg_over(record, phases, spans_of(phases, phase), flt)


def rps_over(record: Record, phases: list[PhaseSpan], spans: list[PhaseSpan], flt: EndpointFilter) -> float | None:
    """Matching requests per second over `spans`, without bias at the load's edges or the ramp-up (verdict/rates.py).
    `phases` is unused; kept so every per-phase figure here takes the same arguments."""
    counts = {second: agg.count for second, agg in per_second(record, flt).items()}
    return rates.rps(record, [(s.start_t, s.end_t) for s in spans], counts)


@dataclass(frozen=True)
class PhaseStats:
    """Observed behaviour in one phase: totals, rates and latency percentiles (ms)."""

    phase: Phase
    spans: int
    duration_s: float
    requests: int
    failures: int
    error_rate: float | None
    rps: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value, "spans": self.spans, "duration_s": self.duration_s, "requests": self.requests,
            "failures": self.failures, "error_rate": self.error_rate, "rps": self.rps,
            "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
        }


def phase_stats(record: Record, phases: list[PhaseSpan], phase: Phase, flt: EndpointFilter | None = None) -> PhaseStats:
    flt = flt or EndpointFilter()
    spans = spans_of(phases, phase)
    agg = agg_over(record, phases, spans, flt)
    return PhaseStats(
        phase=phase, spans=len(spans), duration_s=sum(s.end_t - s.start_t for s in spans),
        requests=agg.count, failures=agg.failures, error_rate=agg.error_rate,
        rps=rps_over(record, phases, spans, flt),
        p50_ms=agg.percentile_ms(0.50), p95_ms=agg.percentile_ms(0.95), p99_ms=agg.percentile_ms(0.99),
    )


# -- the baseline band -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    """What counts as normal, from the baseline. Example: Band.of(baseline_agg).holds(agg) -> (True, "")."""

    baseline_error_rate: float
    baseline_p95_ms: float | None
    error_rate_max: float
    p95_max_ms: float | None

    @classmethod
    def of(cls, baseline: Agg) -> "Band":
        b = baseline.error_rate or 0.0
        p95 = baseline.percentile_ms(BAND_PERCENTILE)
        return cls(
            baseline_error_rate=b,
            baseline_p95_ms=p95,
            error_rate_max=b + max(BAND_ERROR_ABS, BAND_ERROR_REL * b),
            p95_max_ms=None if p95 is None else BAND_P95_FACTOR * p95 + BAND_P95_SLACK_MS,
        )

    def error_ok(self, agg: Agg) -> bool:
        return agg.count > 0 and (agg.error_rate or 0.0) <= self.error_rate_max + 1e-12

    def p95_ok(self, agg: Agg) -> bool:
        p95 = agg.percentile_ms(BAND_PERCENTILE)
        return self.p95_max_ms is None or (p95 is not None and p95 <= self.p95_max_ms)

    def why_not(self, agg: Agg, check_latency: bool = True) -> str:
        """Empty when `agg` is within the band; otherwise what is out of it."""
        if agg.count == 0:
            return "no requests (not serving)"
        reasons = []
        if not self.error_ok(agg):
            reasons.append(f"error rate {pct(agg.error_rate)} > band {pct(self.error_rate_max)}")
        if check_latency and not self.p95_ok(agg):
            reasons.append(f"p95 {ms(agg.percentile_ms(BAND_PERCENTILE))} > band {ms(self.p95_max_ms)}")
        return "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_error_rate": self.baseline_error_rate, "baseline_p95_ms": self.baseline_p95_ms,
            "error_rate_max": self.error_rate_max, "p95_max_ms": self.p95_max_ms,
        }


def detection_threshold(baseline_error_rate: float) -> float:
    return max(baseline_error_rate * DETECT_ERROR_FACTOR, baseline_error_rate + DETECT_ERROR_ABS)


# -- Mann-Whitney U over bucketed latencies ----------------------------------------------------------------------
def mann_whitney_greater(sample: dict[int, int], reference: dict[int, int]) -> float | None:
    """One-sided p-value that `sample` tends to be larger than `reference` (normal approximation, tie-corrected,
    with continuity correction). Inputs are histograms {value: count}. None when either side is empty."""
    n1, n2 = sum(sample.values()), sum(reference.values())
    if n1 == 0 or n2 == 0:
        return None
    n = n1 + n2
    rank_sum_1 = 0.0
    tie_term = 0.0
    below = 0
    for value in sorted(set(sample) | set(reference)):
        a, b = sample.get(value, 0), reference.get(value, 0)
        t = a + b
        if t == 0:
            continue
        mid_rank = below + (t + 1) / 2.0
        rank_sum_1 += a * mid_rank
        tie_term += t**3 - t
        below += t
    u1 = rank_sum_1 - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return 1.0  # every value tied: no evidence of a shift
    z = (u1 - mean - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# -- formatting shared by slo and report ------------------------------------------------------------------------
def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f} ms"


def secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}s"
