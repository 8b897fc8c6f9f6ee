"""How an SLO metric is declared: its typed parameter model next to the function that judges it, registered by name.

Pure: standard library and pydantic. The families (slo_traffic, slo_timing, slo_ledger, slo_signals) register their
metrics on import; chaos_events.verdict.slo imports them all and judges a plan.

A parameter that names something else in the scenario carries a `RefersTo` marker, so the scenario loader checks
the reference (`via: health` must be a declared probe) and the generated reference can say what it must name.

Example:
    @metric(SloMetric.ERROR_RATE, ErrorRateParams, "share of failed requests during a phase")
    def error_rate(spec: SloSpec, run: Judging) -> SloResult: ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator, Field, WithJsonSchema

from chaos_events.record import Record
from chaos_events.scenario.fields import ScenarioModel, TextList, fail, parse_text, shown
from chaos_events.scenario.model import Phase, Plan, ProbeKind, SloMetric, SloSpec
from chaos_events.verdict import stats
from chaos_events.verdict.phases import PhaseSpan
from chaos_events.verdict.results import SloResult, SloStatus
from chaos_events.verdict.stats import Agg, EndpointFilter


@dataclass(frozen=True)
class RefersTo:
    """A parameter names a declared `probe` (of `kinds`, when given) or `target`; `also` lists other words allowed."""

    what: str                                   # "probe" or "target"
    kinds: tuple[ProbeKind, ...] = ()
    also: tuple[str, ...] = ()


class MetricParams(ScenarioModel):
    """Base of every metric's parameter model."""


def _phase(value: Any) -> Phase:
    if isinstance(value, Phase):
        return value
    text = parse_text(value)
    try:
        return Phase(text)
    except ValueError:
        raise fail(f"unknown value {shown(text)}; expected one of: {', '.join(sorted(p.value for p in Phase))}") from None


PhaseField = Annotated[Phase, BeforeValidator(_phase), WithJsonSchema({"enum": sorted(p.value for p in Phase)})]
During = Annotated[PhaseField, Field(description="the phase judged: baseline, fault, recovery, tail or all")]
Endpoints = Annotated[TextList, Field(description="requests judged: Locust's request name (`/api/events`) or "
                                                  "`METHOD name` (`POST /api/events`); none means every endpoint")]
FaultTargets = Annotated[TextList, RefersTo("target"),
                         Field(description="only faults on these targets count (default: every fault)")]


@dataclass(frozen=True)
class MetricDef:
    """One registered metric."""

    metric: SloMetric
    Params: type[MetricParams]
    judge: Callable[["SloSpec", "Judging"], SloResult]
    summary: str


_METRICS: dict[SloMetric, MetricDef] = {}


def metric(which: SloMetric, params: type[MetricParams], summary: str) -> Callable:
    """Decorator registering a judge function. A metric registered twice is an error, never a silent overwrite."""
    def register(judge: Callable) -> Callable:
        if which in _METRICS:
            raise TypeError(f"metric {which.value!r} is already registered by {_METRICS[which].judge.__qualname__}")
        _METRICS[which] = MetricDef(which, params, judge, summary)
        return judge
    return register


def metric_def(which: SloMetric) -> MetricDef:
    return _METRICS[which]


def known_metrics() -> list[MetricDef]:
    """Every registered metric, in SloMetric order."""
    return [_METRICS[m] for m in SloMetric if m in _METRICS]


# -- what a judge function receives --------------------------------------------------------------------------
@dataclass
class Judging:
    """The run being judged: the record, its phases and the plan. Caches what several SLOs read."""

    record: Record
    phases: list[PhaseSpan]
    plan: Plan
    _baselines: dict[Any, Agg | None] = field(default_factory=dict)

    def spans(self, phase: Phase) -> list[PhaseSpan]:
        return stats.spans_of(self.phases, phase)

    def baseline(self, flt: EndpointFilter) -> Agg | None:
        """Baseline traffic, or None when the run had no baseline phase at all (first fault at t=0)."""
        key = flt.describe()
        if key not in self._baselines:
            spans = self.spans(Phase.BASELINE)
            self._baselines[key] = stats.agg_over(self.record, self.phases, spans, flt) if spans else None
        return self._baselines[key]

    def no_baseline_message(self) -> str:
        if not self.phases:
            return "no baseline: the run recorded nothing"
        return (f"no baseline: the first fault starts at t={self.phases[0].start_t:.0f}s, so there is no steady state "
                "to compare with (start faults after some load, e.g. at: 30s)")


# -- shared wording ------------------------------------------------------------------------------------------
def result(spec: SloSpec, status: SloStatus, value: float | None, limit: float | None, unit: str, message: str,
           details: dict | None = None) -> SloResult:
    return SloResult(spec.name, spec.metric, status, value, limit, unit, message, dict(details or {}), spec.optional)


def not_verifiable(spec: SloSpec, message: str, unit: str = "", details: dict | None = None,
                   limit: float | None = None) -> SloResult:
    """A result that says why the SLO could not be judged; its limit is the SLO's own when it has one."""
    if limit is None:
        for name in ("max", "max_s"):
            value = getattr(spec.params, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                limit = value
                break
    return result(spec, SloStatus.NOT_VERIFIABLE, None, limit, unit, message, details)


def passed(ok: bool) -> SloStatus:
    return SloStatus.PASS if ok else SloStatus.FAIL


def when(spans: list[PhaseSpan]) -> str:
    shown_spans = [f"t={s.start_t:.0f}s–{s.end_t:.0f}s" for s in spans[:3]]
    more = f", +{len(spans) - 3} more" if len(spans) > 3 else ""
    return ", ".join(shown_spans) + more


def phase_words(phase: Phase, spans: list[PhaseSpan]) -> str:
    if phase is Phase.ALL:
        return "over the whole run"
    return f"during {phase.value} ({when(spans)})"


def over_by(value: float, limit: float | None, fmt: Callable[[float | None], str]) -> str:
    return f", over by {fmt(value - limit)}" if limit is not None and value > limit + 1e-12 else ""


def points(delta: float | None) -> str:
    """A difference of two ratios, in percentage points (not a relative %)."""
    return "n/a" if delta is None else f"{delta * 100:.1f} points"
