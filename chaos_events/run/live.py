"""The live view of a run, derived from its record for the exporter and the web UI: the phase, the provisional
verdict, and the exporter's state dict. Recomputed, never the source of truth.

Must not import locust or gevent; the session calls these on its own schedule.

Example:
    state = RunState(); refresh(state, plan, record, now_t=42.0); state.phase == "fault"
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos_events.record import FaultEventKind, Record
from chaos_events.scenario.model import Phase, Plan, ProbeKind, SloMetric
from chaos_events.verdict.phases import current_phase
from chaos_events.verdict.results import SloStatus, Verdict
from chaos_events.verdict.slo import evaluate


@dataclass
class RunState:
    """Live, derived view of a run for the exporter and the web UI (recomputed, never the source of truth)."""

    phase: str = Phase.BASELINE.value
    verdict: Verdict | None = None
    final: bool = False
    reports: dict[str, str] = field(default_factory=dict)


def refresh(state: RunState, plan: Plan, record: Record, now_t: float) -> None:
    """Recompute the phase and the provisional verdict as if the run ended now."""
    state.phase = current_phase(record, plan, now_t).value
    previous_end = record.end_t
    record.end_t = now_t
    try:
        state.verdict = evaluate(plan, record)
    finally:
        record.end_t = previous_end


def _slo_figures(verdict: Verdict | None) -> tuple[dict[str, bool | None], float | None, float | None]:
    slo_ok: dict[str, bool | None] = {}
    detection = recovery = None
    for result in verdict.results if verdict is not None else ():
        slo_ok[result.name] = None if result.status is SloStatus.NOT_VERIFIABLE else result.status is SloStatus.PASS
        if result.metric is SloMetric.DETECTION_TIME and result.value is not None:
            detection = result.value
        if result.metric is SloMetric.RECOVERY_TIME and result.value is not None:
            recovery = result.value
    return slo_ok, detection, recovery


def exporter_state(state: RunState, plan: Plan | None, record: Record, active: list[Any], ledger: Any,
                   probes_latest: dict, probe_kinds: dict, users: int, workers: int) -> dict:
    """The dict the exporter reads at scrape time (see observe/exporter.py)."""
    events = record.events
    slo_ok, detection, recovery = _slo_figures(state.verdict)
    ledger_counts = {"acknowledged": ledger.count()}
    for result in record.ledger:
        ledger_counts["verified"] = ledger_counts.get("verified", 0) + result.found
        ledger_counts["lost"] = ledger_counts.get("lost", 0) + result.lost
    lag = {}
    for name, sample in probes_latest.items():
        spec = plan.probes.get(name) if plan else None
        if spec is not None and spec.kind is ProbeKind.KAFKA_LAG and sample.value is not None:
            lag[(spec.params.group, spec.params.topic)] = sample.value
    return {
        "phase": state.phase,
        "active_faults": [(a.fault_type, a.target) for a in active],
        "planned_faults": sorted({(f.type, f.target) for f in plan.faults}) if plan else [],
        "users": users,
        "workers": workers,
        "injections": sum(1 for e in events if e.kind is FaultEventKind.INJECTED),
        "reverts_ok": sum(1 for e in events if e.kind is FaultEventKind.REVERTED),
        "reverts_failed": sum(1 for e in events if e.kind is FaultEventKind.REVERT_FAILED),
        "detection_s": detection,
        "recovery_s": recovery,
        "slo_ok": slo_ok,
        "ledger": ledger_counts,
        "consumer_lag": lag,
        # Not the prometheus_alerts probes: their "healthy" is "no alert firing", and fed back to Prometheus as
        # chaos_probe_healthy it would keep ChaosHealthDegraded firing on itself for the rest of the run.
        "probes": {name: (s.healthy, s.value) for name, s in probes_latest.items()
                   if probe_kinds.get(name) is not ProbeKind.PROMETHEUS_ALERTS},
        "run_id": record.run_id,
        "scenario": record.scenario,
    }
