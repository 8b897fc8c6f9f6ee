"""The verdict: every SLO of a plan judged against the record of a run, whether the experiment is complete, and the
exit code that follows.

Pure: standard library and pydantic. No gevent, locust, docker, prometheus_client or scipy; no I/O, no clock.
The metrics themselves live in their families (slo_traffic, slo_timing, slo_ledger, slo_signals), imported here so
that every metric is registered.

No pass without proof: a run exits 0 only when every planned fault was injected and reverted, and every required
SLO was judged and held. A required SLO that cannot be verified fails the run (unless `optional: true` in the
scenario, or `allow_unverified`); a fault that was never injected makes the experiment incomplete.

Example:
    verdict = evaluate(plan, record)
    verdict.exit_code == ExitCode.OK and all(r.status is SloStatus.PASS for r in verdict.results)
"""
from __future__ import annotations

from dataclasses import dataclass

from chaos_events.errors import ExitCode, most_urgent
from chaos_events.record import TIME_UP, FaultEvent, FaultEventKind, Record
from chaos_events.scenario.model import Plan, SloSpec
from chaos_events.verdict import slo_ledger, slo_signals, slo_timing, slo_traffic  # noqa: F401  (they register)
from chaos_events.verdict import stats
from chaos_events.verdict.metrics import Judging, metric_def
from chaos_events.verdict.phases import PhaseSpan, derive_phases, run_end
from chaos_events.verdict.results import SloResult, SloStatus, Verdict

__all__ = ["evaluate", "evaluate_slo", "completeness", "Missing", "SloResult", "SloStatus", "Verdict"]


CUT_SHORT_TOLERANCE_S = 0.5  # a revert this close to the planned end is on time


@dataclass(frozen=True)
class Missing:
    """A planned fault occurrence that did not happen as planned, and why."""

    fault_id: str
    fault: str
    reason: str

    def to_dict(self) -> dict:
        return {"fault_id": self.fault_id, "fault": self.fault, "reason": self.reason}


def completeness(plan: Plan, record: Record) -> list[Missing]:
    """Every planned occurrence that was not injected, or was reverted before its planned end (a failed revert is
    counted elsewhere)."""
    run_end_t = run_end(record)
    by_id: dict[str, dict[FaultEventKind, FaultEvent]] = {}
    for event in record.events:
        by_id.setdefault(event.fault_id, {})[event.kind] = event
    missing = []
    for spec in plan.faults:
        for oid, (start, planned_end) in zip(spec.occurrence_ids(), spec.occurrences()):
            reason = _shortfall(by_id.get(oid, {}), start, planned_end, run_end_t)
            if reason:
                missing.append(Missing(oid, f"{spec.type} {spec.target}", reason))
    return missing


def _shortfall(seen: dict[FaultEventKind, FaultEvent], start: float, planned_end: float, run_end_t: float) -> str:
    """Why one occurrence did not happen as planned; "" when it did."""
    if FaultEventKind.INJECTED in seen:
        reverted = seen.get(FaultEventKind.REVERTED)
        # Reverted early (a stop, a halt, Ctrl-C): the fault did not last as planned, so it proved less.
        if reverted is not None and reverted.detail != TIME_UP and reverted.t < planned_end - CUT_SHORT_TOLERANCE_S:
            return f"cut short: reverted at t={reverted.t:.1f}s ({reverted.detail}), planned until t={planned_end:g}s"
        return ""
    if FaultEventKind.INJECT_FAILED in seen:
        return f"inject failed: {seen[FaultEventKind.INJECT_FAILED].detail}"
    if FaultEventKind.ABORTED in seen:
        return f"not injected: {seen[FaultEventKind.ABORTED].detail}"
    if start >= run_end_t:
        return f"not injected: the run ended at t={run_end_t:.1f}s, before it was due at t={start:g}s"
    return "not injected (no event recorded)"


def _headline(code: ExitCode, results: tuple[SloResult, ...], missing: list[Missing], revert_failures: list,
              unverified: list[SloResult], record: Record) -> str:
    if code is ExitCode.REVERT_FAILED:
        return "REVERT FAILED: " + "; ".join(f"{e.fault_id} ({e.fault_type} {e.target}): {e.detail}" for e in revert_failures)
    failed = [r for r in results if r.status is SloStatus.FAIL]
    parts = []
    halt = record.meta.get("halt")
    if halt:
        parts.append(f"halted at t={halt['t']:.1f}s: {halt['message']}")
    lost = record.meta.get("workers_lost")
    if lost:
        parts.append("data incomplete: " + "; ".join(f"worker {w['worker']} lost at t={w['t']:.1f}s" for w in lost)
                     + " (its requests after that are missing)")
    if missing:
        parts.append("experiment incomplete: " + "; ".join(f"{m.fault_id} ({m.fault}) {m.reason}" for m in missing))
    if failed:
        parts.append(f"{len(failed)} SLO(s) broken: " + ", ".join(r.name for r in failed))
    if unverified:
        parts.append(f"{len(unverified)} required SLO(s) not verifiable: " + "; ".join(f"{r.name} ({r.message})" for r in unverified))
    return "; ".join(parts) if parts else "every planned fault happened and every required SLO held"


def evaluate_slo(spec: SloSpec, record: Record, phases: list[PhaseSpan], plan: Plan) -> SloResult:
    """One SLO judged on its own (the verdict judges them all with `evaluate`)."""
    return metric_def(spec.metric).judge(spec, Judging(record, phases, plan))


def evaluate(plan: Plan, record: Record, allow_unverified: bool = False) -> Verdict:
    """Judge every SLO of `plan` against `record`, and whether the experiment is complete."""
    run = Judging(record, derive_phases(record, plan), plan)
    with stats.memo():
        results = tuple(metric_def(spec.metric).judge(spec, run) for spec in plan.slos)
    revert_failures = [e for e in record.events if e.kind is FaultEventKind.REVERT_FAILED]
    inject_failures = [e for e in record.events if e.kind is FaultEventKind.INJECT_FAILED]
    missing = completeness(plan, record)
    unverified = [r for r in results if r.status is SloStatus.NOT_VERIFIABLE and not r.optional and not allow_unverified]
    causes = []
    if revert_failures:
        causes.append(ExitCode.REVERT_FAILED)
    if any(r.status is SloStatus.FAIL for r in results) or unverified:
        causes.append(ExitCode.SLO_FAILED)
    if missing or record.meta.get("workers_lost"):
        causes.append(ExitCode.INCOMPLETE)
    if record.meta.get("halt"):
        causes.append(ExitCode.HALTED)
    code = most_urgent(causes)
    counts = {status.value: sum(1 for r in results if r.status is status) for status in SloStatus}
    summary = {
        "scenario": plan.name, "run_id": record.run_id, "slos": len(results), **counts,
        "unverified_required": [r.name for r in unverified],
        "revert_failures": [{"fault_id": e.fault_id, "fault": f"{e.fault_type} {e.target}", "t": e.t, "detail": e.detail}
                            for e in revert_failures],
        "inject_failures": [{"fault_id": e.fault_id, "fault": f"{e.fault_type} {e.target}", "t": e.t, "detail": e.detail}
                            for e in inject_failures],
        "missing_faults": [m.to_dict() for m in missing],
        "halt": record.meta.get("halt"),
        "workers_lost": record.meta.get("workers_lost", []),
        "duration_s": run_end(record),
    }
    headline = _headline(code, results, missing, revert_failures, unverified, record)
    return Verdict(results, code, bool(revert_failures), summary, headline)
