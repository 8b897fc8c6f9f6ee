"""The engine with a fake clock and test-only faults that act on an in-memory world (no sleeps, no processes).

The test faults register under names starting with `_test_engine_`; the fault contract test skips classes
defined in tests/.
"""
from __future__ import annotations


import pytest

from chaos_events.run.engine import ChaosEngine
from chaos_events.errors import InjectionError, RevertError
from chaos_events.faults.base import FaultParams, Fault, FaultContext
from chaos_events.run.journal import Journal
from chaos_events.scenario.model import FaultSpec, Plan, Repeat, Target, TargetKind
from chaos_events.record import FaultEventKind, Record
from tests.helpers import registered_faults

# target name -> set of faults currently applied to it; "order" logs every action
WORLD: dict[str, list] = {}


class LabelParams(FaultParams):
    label: str = "x"


class _WorldFault(Fault):
    Params = LabelParams
    target_kinds = frozenset({TargetKind.HOST})

    def _mark(self) -> str:
        return f"{self.type_name}:{self.params.label}"

    def inject(self, ctx: FaultContext) -> None:
        self.state["applied"] = True
        ctx.save_state()
        WORLD.setdefault(self.target.name, []).append(self._mark())
        WORLD.setdefault("order", []).append(f"inject {self.params.label}")

    def revert(self, ctx: FaultContext) -> None:
        if self.state.get("applied"):
            applied = WORLD.get(self.target.name, [])
            if self._mark() in applied:
                applied.remove(self._mark())
            self.state["applied"] = False
            WORLD.setdefault("order", []).append(f"revert {self.params.label}")


class FlagFault(_WorldFault):
    type_name = "_test_engine_flag"


class FailingRevertFault(_WorldFault):
    type_name = "_test_engine_failing_revert"

    def revert(self, ctx: FaultContext) -> None:
        WORLD.setdefault("order", []).append(f"revert-attempt {self.params.label}")
        raise RevertError(f"cannot undo {self.params.label}")


class HalfwayFault(_WorldFault):
    """Applies its first half, then its inject raises: the revert must still undo the first half."""

    type_name = "_test_engine_halfway"

    def inject(self, ctx: FaultContext) -> None:
        super().inject(ctx)
        raise InjectionError("second half failed")


class BadVerifyFault(_WorldFault):
    type_name = "_test_engine_bad_verify"

    def verify_reverted(self, ctx: FaultContext) -> None:
        raise RevertError("still degraded")


ON_INJECT: list = []   # callables run by AbortingFault.inject (set per test)


class AbortingFault(_WorldFault):
    """Its inject presses the abort button half-way (as a web UI greenlet could while an inject yields)."""

    type_name = "_test_engine_aborting"

    def inject(self, ctx: FaultContext) -> None:
        super().inject(ctx)
        for hook in ON_INJECT:
            hook()


@pytest.fixture(autouse=True, scope="module")
def _test_faults_registered():
    with registered_faults(FlagFault, FailingRevertFault, HalfwayFault, BadVerifyFault, AbortingFault):
        yield


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def clean_world():
    WORLD.clear()
    yield
    WORLD.clear()


def make_plan(*faults: FaultSpec) -> Plan:
    return Plan(name="t", source="t.yml", targets={"box": Target("box", TargetKind.HOST, {})}, probes={}, faults=tuple(faults), slos=())


def spec(index: int, type_name: str, at: float, for_s: float, label: str, repeat: Repeat | None = None) -> FaultSpec:
    return FaultSpec(index, type_name, "box", at_s=at, for_s=for_s, params=LabelParams(label=label), repeat=repeat)


class Harness:
    def __init__(self, plan: Plan, tmp_path, dry_run: bool = False, journal: bool = True):
        self.clock = FakeClock()
        self.record = Record(run_id="r1", scenario="t", start_wall=1000.0)
        self.lines: list[str] = []
        self.seen: list = []
        self.journal = Journal(tmp_path / "journal.json", run_id="r1") if journal else None
        self.engine = ChaosEngine(plan, self.record, self.journal, clock=self.clock, wall=lambda: 1000.0 + self.clock.t,
                                  context_factory=lambda oid: FaultContext(run_dir=str(tmp_path), log=self.lines.append),
                                  dry_run=dry_run, log=self.lines.append, on_event=self.seen.append)

    def at(self, t: float):
        self.clock.t = t
        return self.engine.tick()

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.kind.value, e.fault_id) for e in self.record.events]


def test_tick_injects_and_reverts_on_time_and_records_everything(tmp_path):
    h = Harness(make_plan(spec(0, "_test_engine_flag", 30.0, 20.0, "a")), tmp_path)
    assert h.at(0.0) == 30.0
    assert WORLD == {}
    assert h.at(30.0) == 50.0
    assert WORLD["box"] == ["_test_engine_flag:a"]
    assert h.engine.injected_count == 1
    [active] = h.engine.active()
    assert (active.occurrence_id, active.fault_type, active.target, active.started_t, active.ends_t) == ("f0#1", "_test_engine_flag", "box", 30.0, 50.0)
    assert active.description == "_test_engine_flag box (label=a)"
    assert h.journal.entries()["f0#1"]["state"] == {"applied": True}   # save_state reached the journal
    assert h.at(50.0) is None
    assert WORLD["box"] == []
    assert h.engine.active() == [] and h.journal.entries() == {}
    assert h.kinds() == [("injected", "f0#1"), ("reverted", "f0#1")]
    assert [(e.t, e.wall) for e in h.record.events] == [(30.0, 1030.0), (50.0, 1050.0)]
    assert h.seen == h.record.events
    assert h.lines == ["t=30.0s inject _test_engine_flag box (label=a) [f0#1]", "t=50.0s revert _test_engine_flag box (label=a) [f0#1]"]
    assert not h.engine.revert_failed


def test_revert_all_unwinds_last_in_first_out(tmp_path):
    plan = make_plan(spec(0, "_test_engine_flag", 1.0, 100.0, "a"), spec(1, "_test_engine_flag", 2.0, 100.0, "b"),
                     spec(2, "_test_engine_flag", 3.0, 100.0, "c"))
    h = Harness(plan, tmp_path)
    h.at(5.0)
    assert [a.occurrence_id for a in h.engine.active()] == ["f0#1", "f1#1", "f2#1"]
    assert h.engine.revert_all("end of run") == []
    assert WORLD["order"] == ["inject a", "inject b", "inject c", "revert c", "revert b", "revert a"]
    assert h.engine.active() == [] and h.journal.entries() == {}
    assert h.at(500.0) is None and WORLD["order"][-1] == "revert a"   # finished: nothing more happens


def test_one_failing_revert_does_not_stop_the_others(tmp_path):
    plan = make_plan(spec(0, "_test_engine_flag", 1.0, 100.0, "a"), spec(1, "_test_engine_failing_revert", 2.0, 100.0, "b"),
                     spec(2, "_test_engine_flag", 3.0, 100.0, "c"))
    h = Harness(plan, tmp_path)
    h.at(5.0)
    failures = h.engine.revert_all("end of run")
    assert [(f.occurrence_id, f.error) for f in failures] == [("f1#1", "cannot undo b")]
    assert WORLD["order"][3:] == ["revert c", "revert-attempt b", "revert a"]
    assert h.engine.revert_failed
    assert ("revert_failed", "f1#1") in h.kinds() and ("reverted", "f0#1") in h.kinds() and ("reverted", "f2#1") in h.kinds()
    assert list(h.journal.entries()) == ["f1#1"]     # kept for `chaos-events revert`
    loud = [line for line in h.lines if "REVERT FAILED" in line]
    assert loud == ["t=5.0s REVERT FAILED _test_engine_failing_revert box (label=b) [f1#1] (end of run): cannot undo b "
                    f"-- the target is left degraded; retry with `chaos-events revert --journal {h.journal.path}`"]


def test_failed_verification_is_a_revert_failure(tmp_path):
    h = Harness(make_plan(spec(0, "_test_engine_bad_verify", 1.0, 1.0, "v")), tmp_path)
    h.at(1.0)
    h.at(2.0)
    assert h.kinds() == [("injected", "f0#1"), ("revert_failed", "f0#1")]
    assert h.record.events[-1].detail == "still degraded"
    assert h.engine.revert_failed and h.engine.active() == []


def test_inject_failing_halfway_is_still_reverted_and_the_run_continues(tmp_path):
    plan = make_plan(spec(0, "_test_engine_halfway", 1.0, 10.0, "h"), spec(1, "_test_engine_flag", 2.0, 10.0, "next"))
    h = Harness(plan, tmp_path)
    h.at(1.0)
    assert WORLD["box"] == []                      # the half it applied was undone
    assert WORLD["order"] == ["inject h", "revert h"]
    assert h.kinds() == [("inject_failed", "f0#1"), ("reverted", "f0#1")]
    assert h.record.events[0].detail == "second half failed"
    assert h.engine.injected_count == 0 and not h.engine.revert_failed
    assert h.lines[0] == "t=1.0s INJECT FAILED _test_engine_halfway box (label=h) [f0#1]: second half failed; reverting whatever it did"
    h.at(2.0)
    assert WORLD["box"] == ["_test_engine_flag:next"]
    h.at(11.0)                                     # f0's own revert step finds nothing left to do
    assert [k for k in h.kinds() if k[1] == "f0#1"] == [("inject_failed", "f0#1"), ("reverted", "f0#1")]
    h.at(12.0)
    assert WORLD["box"] == [] and h.journal.entries() == {}


def test_dry_run_touches_nothing(tmp_path):
    plan = make_plan(spec(0, "_test_engine_flag", 1.0, 5.0, "a", repeat=Repeat(every_s=10.0, times=2)))
    h = Harness(plan, tmp_path, dry_run=True)
    while (next_t := h.at(h.clock.t)) is not None:
        h.clock.t = next_t
    assert WORLD == {}
    assert h.journal.entries() == {}
    assert h.kinds() == [("planned", "f0#1"), ("planned", "f0#2")]
    assert h.lines == [
        "t=1.0s would inject _test_engine_flag box (label=a) for 5s [f0#1]",
        "t=6.0s would revert _test_engine_flag box [f0#1]",
        "t=11.0s would inject _test_engine_flag box (label=a) for 5s [f0#2]",
        "t=16.0s would revert _test_engine_flag box [f0#2]",
    ]
    assert h.engine.injected_count == 0


def test_abort_reverts_active_faults_and_cancels_the_rest(tmp_path):
    plan = make_plan(spec(0, "_test_engine_flag", 1.0, 100.0, "a"), spec(1, "_test_engine_flag", 2.0, 100.0, "b"),
                     spec(2, "_test_engine_flag", 50.0, 10.0, "later"))
    h = Harness(plan, tmp_path)
    h.at(5.0)
    assert h.engine.abort("web UI button") == []
    assert WORLD["order"] == ["inject a", "inject b", "revert b", "revert a"]
    assert h.kinds()[-3:] == [("reverted", "f1#1"), ("reverted", "f0#1"), ("aborted", "f2#1")]
    assert h.engine.planned() == []
    assert h.at(60.0) is None
    assert "later" not in " ".join(WORLD["order"])


def test_overlapping_faults_end_on_their_own_schedule(tmp_path):
    plan = make_plan(spec(0, "_test_engine_flag", 10.0, 10.0, "a"), spec(1, "_test_engine_flag", 15.0, 20.0, "b"))
    h = Harness(plan, tmp_path)
    h.at(15.0)
    h.at(20.0)
    assert WORLD["box"] == ["_test_engine_flag:b"]
    assert WORLD["order"] == ["inject a", "inject b", "revert a"]
    h.at(35.0)
    assert WORLD["box"] == []


def test_a_broken_event_listener_does_not_break_the_fault(tmp_path):
    h = Harness(make_plan(spec(0, "_test_engine_flag", 1.0, 1.0, "a")), tmp_path)
    h.engine.on_event = lambda event: 1 / 0
    h.at(1.0)
    h.at(2.0)
    assert WORLD["order"] == ["inject a", "revert a"]
    assert [e.kind for e in h.record.events] == [FaultEventKind.INJECTED, FaultEventKind.REVERTED]
    assert "fault event listener failed: division by zero" in h.lines


def test_engine_without_journal(tmp_path):
    h = Harness(make_plan(spec(0, "_test_engine_flag", 1.0, 1.0, "a")), tmp_path, journal=False)
    h.at(1.0)
    assert h.engine.revert_all("end") == []
    assert WORLD["order"] == ["inject a", "revert a"]


def test_abort_during_an_inject_still_reverts_it_and_takes_no_further_step(tmp_path):
    plan = make_plan(spec(0, "_test_engine_flag", 1.0, 100.0, "a"), spec(1, "_test_engine_aborting", 2.0, 100.0, "b"),
                     spec(2, "_test_engine_flag", 2.0, 100.0, "c"))
    h = Harness(plan, tmp_path)
    ON_INJECT.append(lambda: h.engine.abort("button"))
    try:
        h.at(1.0)
        h.at(2.0)
    finally:
        ON_INJECT.clear()
    assert WORLD["box"] == []
    assert WORLD["order"] == ["inject a", "inject b", "revert b", "revert a"]   # c, due at the same tick, never ran
    assert ("aborted", "f2#1") in h.kinds()
    assert [k for k in h.kinds() if k[1] == "f1#1"] == [("reverted", "f1#1"), ("injected", "f1#1"), ("reverted", "f1#1")]
    assert h.engine.active() == [] and h.journal.entries() == {}
    assert h.at(300.0) is None
