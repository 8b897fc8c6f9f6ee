"""Two faults on one target at the same time conflict; this finds where, through repeats.

Pure: standard library only. The exceptions: proxy toxics of different types on different streams may share a
route at once (latency downstream while bandwidth is capped upstream), and faults on a kafka_cluster that name two
different broker ids (a role like `leader` may name any broker, so it conflicts with every other fault there).

Example:
    overlap_problems(plan_faults, targets) -> [(1, "faults[1] (partition)", "overlaps faults[0] (latency) ...")]
"""
from __future__ import annotations

from typing import Mapping

from chaos_events.scenario.model import FaultSpec, Target, TargetKind

RULE = "two faults on one target at once conflict (only proxy toxics of different types on different streams may overlap)"


def overlap_problems(specs: list[FaultSpec], targets: Mapping[str, Target]) -> list[tuple[int, str, str]]:
    """(index of the later fault, its field label, message) for every conflicting pair."""
    found = []
    for i, first in enumerate(specs):
        for second in specs[i + 1:]:
            if first.target != second.target or _compatible(first, second, targets):
                continue
            window = first_overlap(first.occurrences(), second.occurrences())
            if window is None:
                continue
            found.append((second.index, f"faults[{second.index}] ({second.type})",
                          f"overlaps faults[{first.index}] ({first.type}) on target {first.target!r} from "
                          f"t={window[0]:g}s to t={window[1]:g}s; {RULE}"))
    return found


def _compatible(first: FaultSpec, second: FaultSpec, targets: Mapping[str, Target]) -> bool:
    target = targets.get(first.target)
    if target is not None and target.kind is TargetKind.KAFKA_CLUSTER:   # two brokers by id: not the same one
        ids = [getattr(getattr(spec.params, "broker", None), "id", None) for spec in (first, second)]
        return None not in ids and ids[0] != ids[1]
    if target is None or target.kind is not TargetKind.PROXY or first.type == second.type:
        return False
    streams = [getattr(spec.params, "stream", None) for spec in (first, second)]
    if None in streams:
        return False
    directions = [{"downstream", "upstream"} if s == "both" else {s} for s in streams]
    return not directions[0] & directions[1]


def first_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The earliest window where an occurrence of `a` and one of `b` are both active (both lists sorted)."""
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            return start, end
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return None
