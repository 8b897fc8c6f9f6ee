"""The timeline is pure: plain numbers for the clock, no sleeps."""
from __future__ import annotations

from chaos_events.scenario.model import FaultSpec, Plan, Repeat, Target, TargetKind
from chaos_events.run.timeline import Action, Step, Timeline, schedule


def make_plan(*faults: FaultSpec) -> Plan:
    targets = {"broker": Target("broker", TargetKind.PROCESS, {"pid": 4242}), "api": Target("api", TargetKind.PROXY, {"name": "api"})}
    return Plan(name="t", source="t.yml", targets=targets, probes={}, faults=tuple(faults), slos=())


def brief(steps: list[Step]) -> list[tuple[float, str, str]]:
    return [(s.t, s.action.value, s.occurrence_id) for s in steps]


def test_schedule_orders_by_time_with_reverts_first_at_equal_time():
    plan = make_plan(
        FaultSpec(0, "pause", "broker", at_s=30.0, for_s=20.0),
        FaultSpec(1, "latency", "api", at_s=50.0, for_s=10.0),   # starts as f0 ends: f0's revert goes first
        FaultSpec(2, "down", "api", at_s=5.0, for_s=1.0),
    )
    assert brief(schedule(plan)) == [
        (5.0, "inject", "f2#1"), (6.0, "revert", "f2#1"),
        (30.0, "inject", "f0#1"),
        (50.0, "revert", "f0#1"), (50.0, "inject", "f1#1"),
        (60.0, "revert", "f1#1"),
    ]


def test_reverts_at_equal_time_go_last_injected_first():
    plan = make_plan(FaultSpec(0, "pause", "broker", at_s=10.0, for_s=20.0), FaultSpec(1, "latency", "api", at_s=20.0, for_s=10.0))
    assert brief(schedule(plan))[2:] == [(30.0, "revert", "f1#1"), (30.0, "revert", "f0#1")]


def test_repeat_expands_into_numbered_occurrences():
    plan = make_plan(FaultSpec(0, "kill", "broker", at_s=10.0, for_s=5.0, repeat=Repeat(every_s=20.0, times=3)))
    assert brief(schedule(plan)) == [
        (10.0, "inject", "f0#1"), (15.0, "revert", "f0#1"),
        (30.0, "inject", "f0#2"), (35.0, "revert", "f0#2"),
        (50.0, "inject", "f0#3"), (55.0, "revert", "f0#3"),
    ]
    assert all(s.spec.index == 0 for s in schedule(plan))


def test_back_to_back_repeat_reverts_before_the_next_inject():
    plan = make_plan(FaultSpec(0, "pause", "broker", at_s=0.0, for_s=10.0, repeat=Repeat(every_s=10.0, times=2)))
    assert brief(schedule(plan)) == [(0.0, "inject", "f0#1"), (10.0, "revert", "f0#1"), (10.0, "inject", "f0#2"), (20.0, "revert", "f0#2")]


def test_zero_length_fault_reverts_after_its_own_inject():
    plan = make_plan(FaultSpec(0, "restart", "broker", at_s=10.0, for_s=0.0))
    assert brief(schedule(plan)) == [(10.0, "inject", "f0#1"), (10.0, "revert", "f0#1")]


def test_due_takes_each_step_once_and_next_t_follows():
    timeline = Timeline(make_plan(FaultSpec(0, "pause", "broker", at_s=30.0, for_s=20.0)))
    assert timeline.next_t() == 30.0
    assert timeline.due(29.999) == []
    assert brief(timeline.due(30.0)) == [(30.0, "inject", "f0#1")]
    assert timeline.due(30.0) == []
    assert timeline.next_t() == 50.0
    assert brief(timeline.due(1000.0)) == [(50.0, "revert", "f0#1")]
    assert timeline.next_t() is None
    assert timeline.due(2000.0) == []
    assert timeline.taken == timeline.steps


def test_due_after_a_long_gap_returns_everything_overdue_in_order():
    timeline = Timeline(make_plan(FaultSpec(0, "pause", "broker", at_s=1.0, for_s=1.0), FaultSpec(1, "down", "api", at_s=1.5, for_s=1.0)))
    assert brief(timeline.due(10.0)) == [(1.0, "inject", "f0#1"), (1.5, "inject", "f1#1"), (2.0, "revert", "f0#1"), (2.5, "revert", "f1#1")]


def test_cancel_rest_returns_what_was_left_and_ends_the_timeline():
    timeline = Timeline(make_plan(FaultSpec(0, "pause", "broker", at_s=30.0, for_s=20.0, repeat=Repeat(every_s=60.0, times=2))))
    timeline.due(35.0)
    rest = timeline.cancel_rest()
    assert brief(rest) == [(50.0, "revert", "f0#1"), (90.0, "inject", "f0#2"), (110.0, "revert", "f0#2")]
    assert timeline.next_t() is None
    assert timeline.due(1000.0) == []
    assert timeline.cancelled == rest
    assert timeline.taken + timeline.cancelled == timeline.steps
    assert rest[0].action is Action.REVERT


def test_empty_plan_has_nothing_to_do():
    timeline = Timeline(make_plan())
    assert timeline.steps == [] and timeline.next_t() is None and timeline.due(1e9) == [] and timeline.cancel_rest() == []
