"""The open model's schedule math (load/arrival_rate.py): constant and stepped rates, the split among generators, the
concurrency cap and its drop accounting, and the exact message of every refused setting. A fake clock, no sleeps."""
from __future__ import annotations

import math

import pytest

from chaos_events.errors import ChaosError
from chaos_events.load.arrival_rate import (ArrivalError, OpenModel, RateSchedule, Slots, arrival_times,
                                            build_open_model, constant_rate, stepped)

WHERE = "lf.py: Api"


def model(arrivals, max_concurrency=10, generators=1) -> OpenModel:
    return build_open_model(arrivals, max_concurrency, generators, WHERE)


def times_until(schedule: RateSchedule, phase: float, end: float, from_t: float = 0.0) -> list[float]:
    out = []
    for t in arrival_times(schedule, phase, from_t):
        if t >= end:
            break
        out.append(t)
    return out


def problems(arrivals, max_concurrency=10, generators=1) -> list[str]:
    with pytest.raises(ArrivalError) as caught:
        model(arrivals, max_concurrency, generators)
    return caught.value.problems


# -- the schedule ---------------------------------------------------------------------------------------------
def test_constant_rate_is_evenly_spaced_from_its_phase():
    schedule = model(constant_rate(4)).schedule
    assert times_until(schedule, 0.0, 2.0) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert times_until(schedule, 0.5, 1.0) == [0.125, 0.375, 0.625, 0.875]
    assert schedule.rate_at(123.0) == 4.0 and schedule.expected_by(10.0) == 40.0


def test_stepped_rate_changes_at_each_stage_and_stops_after_the_last():
    schedule = model(stepped([(1, 2), (1, 0), (2, 4)])).schedule
    assert times_until(schedule, 0.0, math.inf) == [0.0, 0.5, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75]
    assert [schedule.rate_at(t) for t in (0.5, 1.5, 3.9, 4.0)] == [2.0, 0.0, 4.0, 0.0]
    assert schedule.expected_by(100.0) == 10.0 and schedule.time_of(10.5) is None


def test_a_zero_rate_first_stage_delays_the_first_arrival():
    assert times_until(model(stepped([(3, 0), (1, 2)])).schedule, 0.0, math.inf) == [3.0, 3.5]


@pytest.mark.parametrize("phase", [0.0, 0.3, 0.999])
def test_the_count_in_any_window_is_rate_times_length_within_one(phase):
    schedule = model(stepped([(7.3, 13.0), (5.1, 41.0), (3.0, 2.5)])).schedule
    for start, end in [(0.0, 15.4), (2.2, 9.9), (7.3, 12.4), (11.0, 11.7)]:
        count = len([t for t in times_until(schedule, phase, math.inf) if start <= t < end])
        assert abs(count - (schedule.expected_by(end) - schedule.expected_by(start))) <= 1


def test_generators_split_the_rate_so_that_together_they_run_the_whole_load():
    open_model = model(constant_rate(100), max_concurrency=200, generators=4)
    share = open_model.per_generator
    assert share.rate_at(0.0) == 25.0 and open_model.slots_per_generator == 50
    phases = [0.1, 0.35, 0.6, 0.85]
    total = sum(len(times_until(share, phase, 10.0)) for phase in phases)
    assert total == 1000  # 100/s for 10 s, whoever carries it


def test_a_generator_that_starts_late_joins_the_schedule_and_replays_nothing():
    schedule = model(constant_rate(10)).schedule
    assert times_until(schedule, 0.5, 1.0, from_t=0.62) == pytest.approx([0.65, 0.75, 0.85, 0.95])


def test_arrival_times_do_not_drift_over_a_long_run():
    schedule = model(constant_rate(3)).schedule
    times = times_until(schedule, 0.25, 3600.0)
    assert len(times) == 10800
    assert times[-1] == pytest.approx((10799 + 0.25) / 3)


# -- the cap ----------------------------------------------------------------------------------------------------
class FakeTarget:
    """Arrivals against a target that answers each request after `latency_s`, on a fake clock."""

    def __init__(self, cap: int, latency_s: float):
        self.slots, self.latency_s, self.finishing = Slots(cap), latency_s, []

    def arrive(self, now: float) -> bool:
        for done in [t for t in self.finishing if t <= now]:
            self.finishing.remove(done)
            self.slots.release()
        if not self.slots.try_acquire():
            return False
        self.finishing.append(now + self.latency_s)
        return True


def test_a_stalled_target_fills_the_cap_and_every_further_arrival_is_dropped():
    target = FakeTarget(cap=5, latency_s=100.0)
    outcomes = [target.arrive(t) for t in times_until(model(constant_rate(10)).schedule, 0.0, 3.0)]
    assert outcomes == [True] * 5 + [False] * 25
    assert (target.slots.started, target.slots.dropped, target.slots.in_flight) == (5, 25, 5)


def test_a_fast_target_never_reaches_the_cap():
    target = FakeTarget(cap=2, latency_s=0.05)
    outcomes = [target.arrive(t) for t in times_until(model(constant_rate(10)).schedule, 0.0, 3.0)]
    assert all(outcomes) and target.slots.dropped == 0 and target.slots.started == 30


def test_slots_free_as_requests_end_and_refuse_a_release_without_an_acquire():
    slots = Slots(2)
    assert [slots.try_acquire() for _ in range(3)] == [True, True, False]
    slots.release()
    assert slots.try_acquire() is True and (slots.started, slots.dropped, slots.in_flight) == (3, 1, 2)
    slots.release(), slots.release()
    with pytest.raises(RuntimeError, match="without a matching try_acquire"):
        slots.release()


# -- refused settings: the exact messages -----------------------------------------------------------------------
def test_a_negative_constant_rate_is_refused():
    assert problems(constant_rate(-5)) == [
        "lf.py: Api.arrivals: constant_rate(rate_per_s): expected a number of arrivals per second > 0, got -5"]


@pytest.mark.parametrize("rate", [0, True, "100", float("nan"), float("inf"), 10 ** 400, None])
def test_every_constant_rate_that_is_not_a_positive_finite_number_is_refused(rate):
    assert problems(constant_rate(rate)) == [
        f"lf.py: Api.arrivals: constant_rate(rate_per_s): expected a number of arrivals per second > 0, got {rate!r}"]


def test_bad_stages_are_each_named_with_their_index():
    assert problems(stepped([(30, 50), (0, 10), (10, -1), "x", (5,), (float("inf"), 3)])) == [
        "lf.py: Api.arrivals: stepped stages[1]: duration_s must be a number of seconds > 0, got 0",
        "lf.py: Api.arrivals: stepped stages[2]: rate_per_s must be a number of arrivals per second >= 0, got -1",
        "lf.py: Api.arrivals: stepped stages[3]: expected a (duration_s, rate_per_s) pair, got 'x'",
        "lf.py: Api.arrivals: stepped stages[4]: expected a (duration_s, rate_per_s) pair, got (5,)",
        "lf.py: Api.arrivals: stepped stages[5]: duration_s must be a number of seconds > 0, got inf",
    ]


def test_stepped_needs_a_non_empty_list_with_some_rate():
    assert problems(stepped([])) == [
        "lf.py: Api.arrivals: stepped(stages): expected a non-empty list of (duration_s, rate_per_s) pairs, got []"]
    assert problems(stepped([(10, 0), (5, 0)])) == [
        "lf.py: Api.arrivals: stepped(stages): every stage has rate_per_s 0, so no request would ever start"]


def test_arrivals_that_are_not_declared_with_a_constructor_are_refused():
    expected = ("lf.py: Api.arrivals: expected constant_rate(RATE_PER_S) or stepped([(DURATION_S, RATE_PER_S), ...]), "
                "got {!r}")
    assert problems(None) == [expected.format(None)]
    assert problems(100) == [expected.format(100)]


@pytest.mark.parametrize("cap", [0, -3, 2.5, "10", None, True])
def test_a_cap_that_is_not_a_positive_whole_number_is_refused(cap):
    assert problems(constant_rate(10), max_concurrency=cap) == [
        "lf.py: Api.max_concurrency: expected a whole number >= 1 (the most requests in flight at once, for the whole "
        f"load), got {cap!r}"]


def test_generators_must_be_a_positive_whole_number_and_each_needs_a_slot():
    assert problems(constant_rate(10), generators=0) == [
        "lf.py: Api.fixed_count: expected a whole number >= 1 (how many users carry the arrivals, each 1/fixed_count "
        "of the rate and of max_concurrency), got 0"]
    assert problems(constant_rate(10), max_concurrency=3, generators=4) == [
        "lf.py: Api.max_concurrency: 3 is fewer than fixed_count 4: each user that carries arrivals needs at least "
        "one request in flight"]


def test_every_problem_is_reported_at_once_and_is_a_chaos_error():
    with pytest.raises(ChaosError) as caught:
        model(constant_rate(-1), max_concurrency=0, generators=0)
    assert len(caught.value.problems) == 3 and caught.value.exit_code == 2


def test_the_cap_is_split_rounded_down_so_the_whole_load_never_exceeds_it():
    open_model = model(constant_rate(10), max_concurrency=200, generators=3)
    assert open_model.slots_per_generator == 66 and open_model.slots_per_generator * 3 <= 200
