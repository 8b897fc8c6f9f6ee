"""Per-phase figures of a run and their change from the baseline, computed in one place for the reports and the
pytest plugin's ChaosResult.

Pure module: standard library only (no gevent, locust, docker, prometheus_client, no I/O). It reads a Record and
the phase spans through verdict.stats; wrap a call in `stats.memo()` to share the per-second series with other
calculations over the same record.

Example:
    figures = phase_figures(record, derive_phases(record, plan))
    figures["fault"].error_rate_change   # 0.143: 14.3 points above the baseline's error rate
    figures["fault"].p95_ratio           # 25.0: the fault's p95 is 25x the baseline's
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from chaos_events.record import Record
from chaos_events.scenario.model import Phase
from chaos_events.verdict import stats
from chaos_events.verdict.phases import PhaseSpan
from chaos_events.verdict.stats import EndpointFilter, PhaseStats

# The phases a report shows, in order.
REPORTED_PHASES = (Phase.BASELINE, Phase.FAULT, Phase.RECOVERY, Phase.TAIL)
# A sliver (e.g. a tail of a few ms after the last recovery window) has no whole second to show.
MIN_PHASE_SHOWN_S = 1.0


@dataclass(frozen=True)
class PhaseFigures:
    """Observed behaviour in one phase and how it compares with the baseline.

    Invariant: the comparison fields are None for the baseline itself, and whenever either side lacks the figure
    (no baseline traffic, a zero baseline p95 or rate). `error_rate_change` is in fraction points (0.143 = +14.3
    points), `rps_change` relative (-0.53 = 53% fewer requests per second), `p95_ratio` / `p99_ratio` multiples.

    Example: PhaseFigures(stats, spans, error_rate_change=0.143, p95_ratio=25.0, p99_ratio=25.0, rps_change=-0.53)
    """

    stats: PhaseStats
    spans: tuple[PhaseSpan, ...]
    error_rate_change: float | None = None
    p95_ratio: float | None = None
    p99_ratio: float | None = None
    rps_change: float | None = None

    @property
    def phase(self) -> Phase:
        return self.stats.phase

    def to_dict(self) -> dict[str, Any]:
        """The report's `phase_stats` row: the phase's stats, its spans, and the comparison with the baseline."""
        row = self.stats.to_dict()
        row["spans"] = [s.to_dict() for s in self.spans]  # the spans themselves, not just their count
        row.update(error_rate_change=self.error_rate_change, p95_ratio=self.p95_ratio, p99_ratio=self.p99_ratio,
                   rps_change=self.rps_change)
        return row


def phase_figures(record: Record, phases: list[PhaseSpan], flt: EndpointFilter | None = None, *,
                  wanted: Iterable[Phase] = REPORTED_PHASES,
                  min_duration_s: float = MIN_PHASE_SHOWN_S) -> dict[str, PhaseFigures]:
    """Figures of each `wanted` phase that lasted at least `min_duration_s` in total, keyed by phase name, in order.

    `flt` selects the endpoints (all user endpoints by default). `min_duration_s=0` keeps every wanted phase, even
    one the run never entered (its figures are then empty: 0 requests, None rates).
    """
    flt = flt or EndpointFilter()
    baseline = stats.phase_stats(record, phases, Phase.BASELINE, flt)
    out: dict[str, PhaseFigures] = {}
    for phase in wanted:
        spans = tuple(stats.spans_of(phases, phase))
        if sum(s.duration_s for s in spans) < min_duration_s:
            continue
        current = baseline if phase is Phase.BASELINE else stats.phase_stats(record, phases, phase, flt)
        out[phase.value] = _compared(current, spans, None if phase is Phase.BASELINE else baseline)
    return out


def _compared(current: PhaseStats, spans: tuple[PhaseSpan, ...], baseline: PhaseStats | None) -> PhaseFigures:
    if baseline is None:
        return PhaseFigures(current, spans)
    return PhaseFigures(
        current, spans,
        error_rate_change=_difference(current.error_rate, baseline.error_rate),
        p95_ratio=_ratio(current.p95_ms, baseline.p95_ms),
        p99_ratio=_ratio(current.p99_ms, baseline.p99_ms),
        rps_change=None if (ratio := _ratio(current.rps, baseline.rps)) is None else ratio - 1.0,
    )


def _difference(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else value - base


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None
