"""The fault timeline: a Plan expanded into inject/revert steps, taken in order against a run clock.

Pure module: standard library only. No gevent, locust, docker or prometheus_client, and no clock of its own:
callers pass the run time in (`due(now_t)`), so tests drive it with plain numbers and no sleeps.

Order of steps: by run time; at an equal time reverts come before injects (a repeat that starts as the previous
occurrence ends finds the target restored first), and reverts at an equal time go last-injected first. A
zero-length occurrence is the exception: its revert follows its own inject.

Example:
    timeline = Timeline(plan)               # plan.faults == (FaultSpec(0, "pause", "broker", at_s=30, for_s=20),)
    timeline.due(10.0) == []
    timeline.next_t() == 30.0
    [s.action for s in timeline.due(50.0)] == [Action.INJECT, Action.REVERT]
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from chaos_events.scenario.model import FaultSpec, Plan


class Action(enum.Enum):
    INJECT = "inject"
    REVERT = "revert"


@dataclass(frozen=True)
class Step:
    """One thing to do at run time `t`. `occurrence_id` names one occurrence of a fault (model.occurrence_id)."""

    t: float
    action: Action
    occurrence_id: str
    spec: FaultSpec

    def describe(self) -> str:
        """The dry run's line: `t=30.0s inject pause broker`."""
        return f"t={_seconds(self.t)} {self.action.value} {self.spec.type} {self.spec.target}"


def _seconds(t: float) -> str:
    """30 -> '30.0s'; 0.25 -> '0.25s': one decimal unless the value needs more."""
    return f"{t:.1f}s" if round(t, 1) == t else f"{t:g}s"


def schedule(plan: Plan) -> list[Step]:
    """Every step of the plan, repeats expanded, in the order they must be taken."""
    keyed: list[tuple[tuple, Step]] = []
    for spec in plan.faults:
        for number, (oid, (start, end)) in enumerate(zip(spec.occurrence_ids(), spec.occurrences()), start=1):
            keyed.append(((start, 1, spec.index, number), Step(start, Action.INJECT, oid, spec)))
            # Reverts sort before injects at the same time (rank 0), latest-injected first; a zero-length
            # occurrence ranks 2 so its revert cannot overtake its own inject.
            rank = 0 if end > start else 2
            keyed.append(((end, rank, -start, -spec.index, -number), Step(end, Action.REVERT, oid, spec)))
    keyed.sort(key=lambda pair: pair[0])
    return [step for _, step in keyed]


class Timeline:
    """The plan's steps and a cursor. Invariant: `taken + cancelled + remaining() == steps`, in order; a step is taken at most once.

    Example: Timeline(plan).due(now_t) returns the steps whose time has come and marks them taken.
    """

    def __init__(self, plan: Plan):
        self.steps: list[Step] = schedule(plan)
        self.taken: list[Step] = []
        self.cancelled: list[Step] = []
        self._cursor = 0

    def due(self, now_t: float) -> list[Step]:
        """Steps not yet taken with t <= now_t, in order; they count as taken from now on."""
        start = self._cursor
        while self._cursor < len(self.steps) and self.steps[self._cursor].t <= now_t:
            self._cursor += 1
        steps = self.steps[start:self._cursor]
        self.taken.extend(steps)
        return steps

    def peek(self, now_t: float) -> Step | None:
        """The next step not yet taken, when its time has come (now_t >= its t); it is not taken."""
        if self._cursor < len(self.steps) and self.steps[self._cursor].t <= now_t:
            return self.steps[self._cursor]
        return None

    def take(self) -> Step:
        """Take the next step (after `peek` returned it)."""
        step = self.steps[self._cursor]
        self._cursor += 1
        self.taken.append(step)
        return step

    def next_t(self) -> float | None:
        """Run time of the next step not yet taken; None when the timeline is done."""
        return self.steps[self._cursor].t if self._cursor < len(self.steps) else None

    def remaining(self) -> list[Step]:
        return self.steps[self._cursor:]

    def cancel_rest(self) -> list[Step]:
        """Drop every step not yet taken (abort); returns them."""
        rest = self.steps[self._cursor:]
        self.cancelled.extend(rest)
        self._cursor = len(self.steps)
        return rest
