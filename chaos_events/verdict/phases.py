"""Phases of a run (baseline, fault, recovery, tail) derived from the record's fault events and the plan.

Pure module: standard library only. No gevent, locust, docker or prometheus_client; no clock (callers pass `t`).

Rules:
- baseline is [0, first actual injection);
- a fault span runs from an INJECTED event to the REVERTED / REVERT_FAILED event of the same occurrence; when the
  record has no fault events at all (dry run, or a record written without a timeline), the plan's schedule is used;
- overlapping faults merge into one fault span; a fault still active at the end of the run ends there;
- recovery runs from the revert to min(revert + settings.recovery_window_s, next injection);
- tail is steady state after a recovery window: until the next fault, or the end of the run.

Example:
    derive_phases(record, plan)
    -> [PhaseSpan(BASELINE, 0, 30, None), PhaseSpan(FAULT, 30.2, 50.1, "f0#1"),
        PhaseSpan(RECOVERY, 50.1, 80.1, "f0#1"), PhaseSpan(TAIL, 80.1, 120, None)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from chaos_events.scenario.model import Phase, Plan
from chaos_events.record import FaultEvent, FaultEventKind, Record

# events that show the timeline really ran (as opposed to a dry run's PLANNED events, or none at all)
_REAL_EVENTS = frozenset({
    FaultEventKind.INJECTED, FaultEventKind.REVERTED, FaultEventKind.INJECT_FAILED,
    FaultEventKind.REVERT_FAILED, FaultEventKind.ABORTED,
})


@dataclass(frozen=True)
class PhaseSpan:
    """One contiguous stretch of run time [start_t, end_t) in one phase.

    `occurrence_id` names the fault occurrence(s) of a fault or recovery span ("f0#1", or "f0#1+f1#1" for merged
    overlapping faults); None for baseline and tail.
    """

    phase: Phase
    start_t: float
    end_t: float
    occurrence_id: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_t - self.start_t

    def to_dict(self) -> dict:
        return {"phase": self.phase.value, "start_t": self.start_t, "end_t": self.end_t, "occurrence_id": self.occurrence_id}


@dataclass(frozen=True)
class Occurrence:
    """One injected fault occurrence on the run clock.

    `end_t` is the revert time, or the run's end when it was never reverted (`closed` False). `from_plan` marks an
    occurrence taken from the plan's schedule because nothing was injected for real (dry run).
    """

    fault_id: str
    fault_type: str
    target: str
    start_t: float
    end_t: float
    closed: bool
    revert_failed: bool = False
    from_plan: bool = False

    def describe(self) -> str:
        return f"{self.fault_id} ({self.fault_type} {self.target})"

    def to_dict(self) -> dict:
        return {
            "fault_id": self.fault_id, "fault_type": self.fault_type, "target": self.target, "start_t": self.start_t,
            "end_t": self.end_t, "closed": self.closed, "revert_failed": self.revert_failed, "from_plan": self.from_plan,
        }


def run_end(record: Record) -> float:
    """The run's end on the run clock: record.end_t, else the latest thing observed, else 0."""
    if record.end_t is not None:
        return float(record.end_t)
    times = [record.t_of(s) + 1.0 for s in record.windows]
    times += [e.t for e in record.events] + [p.t for p in record.probes]
    return max([0.0, *times])


def _raw_occurrences(events: Iterable[FaultEvent], plan: Plan) -> list[tuple[str, str, str, float, float | None, bool, bool]]:
    """(id, type, target, start, end or None, revert_failed, from_plan) from events, else from the plan."""
    events = sorted(events, key=lambda e: e.t)
    if any(e.kind in _REAL_EVENTS for e in events):
        open_: dict[str, FaultEvent] = {}
        done: list[tuple[str, str, str, float, float | None, bool, bool]] = []
        failed_reverts = {e.fault_id for e in events if e.kind is FaultEventKind.REVERT_FAILED}
        for e in events:
            if e.kind is FaultEventKind.INJECTED and e.fault_id not in open_:
                open_[e.fault_id] = e
            elif e.kind in (FaultEventKind.REVERTED, FaultEventKind.REVERT_FAILED) and e.fault_id in open_:
                start = open_.pop(e.fault_id)
                done.append((e.fault_id, start.fault_type, start.target, start.t, e.t, e.fault_id in failed_reverts, False))
        for fid, start in open_.items():
            done.append((fid, start.fault_type, start.target, start.t, None, fid in failed_reverts, False))
        return sorted(done, key=lambda o: (o[3], o[0]))
    out = [(oid, spec.type, spec.target, start, end, False, True)
           for spec in plan.faults for oid, (start, end) in zip(spec.occurrence_ids(), spec.occurrences())]
    return sorted(out, key=lambda o: (o[3], o[0]))


def fault_occurrences(record: Record, plan: Plan) -> list[Occurrence]:
    """Every fault occurrence of the run, clipped to the run's end, sorted by start."""
    end = run_end(record)
    out = []
    for fid, ftype, target, start, stop, revert_failed, from_plan in _raw_occurrences(record.events, plan):
        if start >= end:
            continue  # the run ended before this one was due
        closed = stop is not None and stop <= end
        out.append(Occurrence(fid, ftype, target, start, min(stop, end) if stop is not None else end,
                              closed=closed, revert_failed=revert_failed, from_plan=from_plan))
    return out


def merged_fault_spans(occurrences: list[Occurrence]) -> list[tuple[float, float, list[Occurrence]]]:
    """Overlapping (or touching) occurrences merged: (start, end, members), sorted."""
    merged: list[tuple[float, float, list[Occurrence]]] = []
    for occ in sorted(occurrences, key=lambda o: o.start_t):
        if merged and occ.start_t <= merged[-1][1]:
            start, end, members = merged[-1]
            merged[-1] = (start, max(end, occ.end_t), members + [occ])
        else:
            merged.append((occ.start_t, occ.end_t, [occ]))
    return merged


def _layout(occurrences: list[Occurrence], end: float, recovery_window_s: float) -> list[PhaseSpan]:
    spans: list[PhaseSpan] = []

    def add(phase: Phase, start: float, stop: float, oid: str | None) -> None:
        if stop > start:
            spans.append(PhaseSpan(phase, start, stop, oid))

    merged = merged_fault_spans(occurrences)
    add(Phase.BASELINE, 0.0, merged[0][0] if merged else end, None)
    for i, (start, stop, members) in enumerate(merged):
        oid = "+".join(o.fault_id for o in members)
        add(Phase.FAULT, start, stop, oid)
        next_start = merged[i + 1][0] if i + 1 < len(merged) else end
        recovery_end = min(stop + recovery_window_s, next_start, end)
        add(Phase.RECOVERY, stop, recovery_end, oid)
        add(Phase.TAIL, recovery_end, next_start, None)
    return spans


def derive_phases(record: Record, plan: Plan) -> list[PhaseSpan]:
    """The run cut into phase spans, in time order, covering [0, run end). Empty when the run has no duration."""
    end = run_end(record)
    if end <= 0:
        return []
    return _layout(fault_occurrences(record, plan), end, plan.settings.recovery_window_s)


def current_phase(record: Record, plan: Plan, t: float) -> Phase:
    """The phase at run time `t` of a live run, from the events seen so far (for the exporter and the web UI)."""
    raw = _raw_occurrences([e for e in record.events if e.t <= t], plan)
    started = [o for o in raw if o[3] <= t]
    if not started:
        return Phase.BASELINE
    if any(stop is None or t < stop for _, _, _, _, stop, _, _ in started):
        return Phase.FAULT
    last_revert = max(stop for _, _, _, _, stop, _, _ in started)
    return Phase.RECOVERY if t < last_revert + plan.settings.recovery_window_s else Phase.TAIL
