"""Arrival schedules of the open model (arrival-rate load): when requests start, and how many may be in flight.

Pure module: standard library only (no locust, no gevent, no clock of its own); times are float seconds of run time
that callers pass in. `chaos_events/locust_plugin/arrivals.py` runs these schedules inside Locust users.

The model: the whole load starts `rate(t)` requests per second, a step function of run time: `constant_rate(r)`, or
`stepped([(duration_s, rate_per_s), ...])`, after whose last stage no more start (as k6's arrival-rate executors end).
It is carried by `generators` Locust users, each with 1/generators of the rate and of the concurrency cap. Generator
g's k-th arrival is due when the expected count of its share reaches k + phase_g (phase in [0, 1)): a fixed schedule
from the run's start, so neither a slow target nor a late wake-up moves the arrivals that follow.

Settings are checked by `build_open_model`, not by `constant_rate`/`stepped`: those run while Locust imports the
locustfile, where an exception would end in a traceback instead of a message and exit 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from chaos_events.errors import ChaosError

__all__ = ["ArrivalError", "Arrivals", "OpenModel", "RateSchedule", "Slots", "arrival_times", "build_open_model",
           "constant_rate", "stepped"]

EXPECTED_ARRIVALS = "expected constant_rate(RATE_PER_S) or stepped([(DURATION_S, RATE_PER_S), ...])"


class ArrivalError(ChaosError):
    """An open-model setting is invalid. Carries every problem found, each naming the class and attribute."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Arrivals:
    """What a user class declares (`arrivals = constant_rate(100)`), unchecked until `build_open_model`.

    Example: stepped([(30, 50), (60, 100)]) is 50 arrivals/s for 30 s, then 100/s for 60 s, then none.
    """

    kind: str  # "constant_rate" or "stepped"
    raw: Any

    def __repr__(self) -> str:
        return f"{self.kind}({self.raw!r})"


def constant_rate(rate_per_s: float) -> Arrivals:
    """`rate_per_s` arrivals per second for the whole load, for as long as the run lasts."""
    return Arrivals("constant_rate", rate_per_s)


def stepped(stages: Any) -> Arrivals:
    """Stages of (duration_s, rate_per_s), one after the other from the run's start; no arrivals after the last."""
    return Arrivals("stepped", stages)


@dataclass(frozen=True)
class RateSchedule:
    """Arrivals per second as a step function of run time: each (duration_s, rate_per_s) stage in turn, none after.

    Invariant: durations > 0 (the last may be math.inf), rates finite and >= 0.
    Example: RateSchedule(((2.0, 10.0), (math.inf, 4.0))).expected_by(3.0) == 24.0
    """

    stages: tuple[tuple[float, float], ...]

    def rate_at(self, t: float) -> float:
        start = 0.0
        for duration, rate in self.stages:
            if start <= t < start + duration:
                return rate
            start += duration
        return 0.0

    def expected_by(self, t: float) -> float:
        """How many arrivals are due in [0, t): the integral of the rate."""
        count, start = 0.0, 0.0
        for duration, rate in self.stages:
            if t <= start:
                break
            count += rate * (min(t, start + duration) - start)
            start += duration
        return count

    def time_of(self, n: float) -> float | None:
        """When the expected count reaches n (n >= 0), or None when it never does.

        A count reached exactly at a stage's end belongs to the next stage with a rate: no arrival at the first
        instant of a stage of rate 0.
        """
        count, start = 0.0, 0.0
        for duration, rate in self.stages:
            if rate > 0:
                in_stage = rate * duration
                if count + in_stage > n:
                    return start + max(0.0, n - count) / rate
                count += in_stage
            start += duration
        return None

    def share(self, parts: int) -> "RateSchedule":
        """The schedule of one of `parts` generators: every rate divided by `parts`."""
        return RateSchedule(tuple((duration, rate / parts) for duration, rate in self.stages))


def arrival_times(schedule: RateSchedule, phase: float, from_t: float = 0.0) -> Iterator[float]:
    """One generator's arrival times (run seconds, ascending) from `from_t` on: the k-th when the count reaches k + phase.

    A generator that starts late (Locust's -r ramp) joins the schedule at `from_t`; it does not replay earlier arrivals.
    """
    k = max(0, math.ceil(schedule.expected_by(from_t) - phase))
    while (t := schedule.time_of(k + phase)) is not None:
        yield t
        k += 1


class Slots:
    """The concurrency cap of one generator: at most `cap` arrivals in flight; each refused arrival counts as dropped.

    Invariant: 0 <= in_flight <= cap, and started + dropped is the number of try_acquire calls.
    Example: s = Slots(1); s.try_acquire() is True; s.try_acquire() is False (s.dropped == 1); s.release()
    """

    def __init__(self, cap: int):
        self.cap = cap
        self.in_flight = 0
        self.started = 0
        self.dropped = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.cap:
            self.dropped += 1
            return False
        self.in_flight += 1
        self.started += 1
        return True

    def release(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("Slots.release() without a matching try_acquire()")
        self.in_flight -= 1


@dataclass(frozen=True)
class OpenModel:
    """A user class's checked open-model settings: the whole load's schedule and cap, split among `generators` users.

    Example: OpenModel(RateSchedule(((math.inf, 100.0),)), max_concurrency=200, generators=4).slots_per_generator == 50
    """

    schedule: RateSchedule
    max_concurrency: int
    generators: int

    @property
    def per_generator(self) -> RateSchedule:
        return self.schedule.share(self.generators)

    @property
    def slots_per_generator(self) -> int:
        """The cap split evenly, rounded down, so that the whole load never has more than max_concurrency in flight."""
        return self.max_concurrency // self.generators


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int of 309 digits or more
        return False


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _stages(arrivals: Any, where: str, problems: list[str]) -> tuple[tuple[float, float], ...]:
    field = f"{where}.arrivals"
    if not isinstance(arrivals, Arrivals):
        problems.append(f"{field}: {EXPECTED_ARRIVALS}, got {arrivals!r}")
        return ()
    if arrivals.kind == "constant_rate":
        rate = arrivals.raw
        if not _number(rate) or rate <= 0:
            problems.append(f"{field}: constant_rate(rate_per_s): expected a number of arrivals per second > 0, got {rate!r}")
            return ()
        return ((math.inf, float(rate)),)
    raw = arrivals.raw
    if not isinstance(raw, (list, tuple)) or not raw:
        problems.append(f"{field}: stepped(stages): expected a non-empty list of (duration_s, rate_per_s) pairs, got {raw!r}")
        return ()
    stages, before = [], len(problems)
    for i, stage in enumerate(raw):
        if not isinstance(stage, (list, tuple)) or len(stage) != 2:
            problems.append(f"{field}: stepped stages[{i}]: expected a (duration_s, rate_per_s) pair, got {stage!r}")
            continue
        duration, rate = stage
        if not _number(duration) or duration <= 0:
            problems.append(f"{field}: stepped stages[{i}]: duration_s must be a number of seconds > 0, got {duration!r}")
        if not _number(rate) or rate < 0:
            problems.append(f"{field}: stepped stages[{i}]: rate_per_s must be a number of arrivals per second >= 0, got {rate!r}")
        stages.append((float(duration) if _number(duration) else 0.0, float(rate) if _number(rate) else 0.0))
    if len(problems) == before and not any(rate > 0 for _, rate in stages):
        problems.append(f"{field}: stepped(stages): every stage has rate_per_s 0, so no request would ever start")
    return tuple(stages)


def build_open_model(arrivals: Any, max_concurrency: Any, generators: Any, where: str) -> OpenModel:
    """Check a user class's settings; raises ArrivalError with every problem. `where` names the class ("lf.py: Api")."""
    problems: list[str] = []
    stages = _stages(arrivals, where, problems)
    if not _whole(max_concurrency) or max_concurrency < 1:
        problems.append(f"{where}.max_concurrency: expected a whole number >= 1 (the most requests in flight at once, "
                        f"for the whole load), got {max_concurrency!r}")
    if not _whole(generators) or generators < 1:
        problems.append(f"{where}.fixed_count: expected a whole number >= 1 (how many users carry the arrivals, each "
                        f"1/fixed_count of the rate and of max_concurrency), got {generators!r}")
    elif _whole(max_concurrency) and 1 <= max_concurrency < generators:
        problems.append(f"{where}.max_concurrency: {max_concurrency} is fewer than fixed_count {generators}: each user "
                        "that carries arrivals needs at least one request in flight")
    if problems:
        raise ArrivalError(problems)
    return OpenModel(RateSchedule(stages), max_concurrency, generators)
