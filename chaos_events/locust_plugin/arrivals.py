"""Open-model (arrival-rate) load for Locust users: requests start on a fixed schedule, whatever earlier ones are doing.

    class Api(OpenModelUser, FastHttpUser):       # OpenModelUser first; HttpUser and KafkaUser work the same way
        arrivals = constant_rate(100)             # or stepped([(30, 50), (60, 100)]): (duration_s, rate_per_s) stages
        max_concurrency = 200                     # the most requests in flight at once, for the whole load
        fixed_count = 4                           # users that carry the arrivals, each 1/4 of the rate and of the cap

        @task
        def read(self):
            self.client.get("/")

What holds (the schedule math is in chaos_events/load/arrival_rate.py, pure and tested with a fake clock):
- Each arrival is due at a time fixed from the run's start (test_start in this process). When it is due, one task
  (picked by weight, as Locust does) starts in a greenlet of its own. `wait_time` is not used.
- When the user's share of max_concurrency is already in flight, the arrival is dropped: one failed request event
  with the error "dropped: overloaded", under the name of the first request of the same task's latest arrival (before
  it has made one: request type ARRIVAL and the task's name), with response_time None, so that Locust counts it as a request and a
  failure and keeps it out of the percentiles (a dropped request has no latency, and a 0 would flatter them).
- Latency is from the intended start: every request fired inside an arrival is reported with Locust's measured time
  plus how late the arrival started (its task's start minus its due time). The client's `request_event` is wrapped
  per user, so Locust's stats, the harness's recorder and its verdict all see the same number.
- Kafka (users.KafkaUser): `produce` only enqueues and the delivery arrives later on the poll greenlet. The arrival
  holds its concurrency slot until every message it produced has been reported, and a delivery is reported with
  librdkafka's produce-to-ack time plus how late the arrival started: from the intended start to the broker's ack.
- Distributed: the load is split by Locust's own user distribution. The run has `fixed_count` users of the class in
  all (master + workers), each carrying 1/fixed_count of the rate and of the cap; -u must be at least the sum of the
  fixed counts. The -r ramp spawns them. A stop ends the arrivals in flight at once (stop_timeout does not apply).
- Every setting is checked in `init`, before any load starts: a bad one prints what is wrong and exits 2.

Imports locust and gevent (only chaos_events/locust_plugin/ may). Must not import docker or prometheus_client.
"""
from __future__ import annotations

import logging
import os
import random
import sys
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.pool import Group
from locust import User, events
from locust.exception import InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopTest, StopUser
from locust.runners import WorkerRunner
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING, DefaultTaskSet, TaskSet

from chaos_events.load.arrival_rate import (ArrivalError, OpenModel, Slots, arrival_times, build_open_model,
                                            constant_rate, stepped)

__all__ = ["OpenModelUser", "constant_rate", "stepped", "DROPPED", "hold_for_delivery"]

logger = logging.getLogger(__name__)

DROPPED = "dropped: overloaded"
CLOCK = time.monotonic
IDLE_S = 3600.0

_current: ContextVar["Arrival | None"] = ContextVar("chaos_events_arrival", default=None)


@dataclass
class _ClassState:
    """Per user class and process: its checked settings, the request name each task last used, and the run's tallies."""

    model: OpenModel
    names: dict[Any, tuple[str, str]] = field(default_factory=dict)
    arrivals: int = 0
    dropped: int = 0


_states: dict[type, _ClassState] = {}


class _RunClock:
    """When this process's run started (test_start): every generator's schedule counts from there."""

    started_at: float | None = None

    def start(self) -> float:
        if self.started_at is None:  # used outside a Locust run (no test_start): count from the first generator
            self.started_at = CLOCK()
        return self.started_at


_run = _RunClock()


class Arrival:
    """One scheduled start of a task.

    Invariant: its concurrency slot is released exactly once, when the task has returned and every delivery it holds
    (`hold_for_delivery`) has been reported. Example: a Kafka task holds once per message, settles once per delivery.
    """

    __slots__ = ("due", "late_ms", "_holds", "_slots", "_names", "_task", "_named")

    def __init__(self, due: float, slots: Slots, names: dict, task: Any):
        self.due = due
        self.late_ms = 0.0
        self._holds = 1  # the task itself
        self._slots, self._names, self._task, self._named = slots, names, task, False

    def began(self, now: float) -> None:
        self.late_ms = max(0.0, (now - self.due) * 1000.0)

    def learn(self, request_type: str, name: str) -> None:
        """The first request of an arrival names its task's later drops."""
        if not self._named:
            self._named = True
            self._names[self._task] = (request_type, name)

    def hold(self) -> None:
        self._holds += 1

    def settle(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            self._slots.release()


def hold_for_delivery(request_type: str, name: str) -> Arrival | None:
    """For an outcome reported later, outside the arrival (a Kafka delivery): the current arrival, held until settled.

    None outside an arrival (the closed model). The caller adds `late_ms` to the reported time and calls `settle()`
    once, when the outcome is reported.
    """
    arrival = _current.get()
    if arrival is not None:
        arrival.learn(request_type, name)
        arrival.hold()
    return arrival


class _FromIntendedStart:
    """A client's request event that adds, to each request fired inside an arrival, how late that arrival started."""

    def __init__(self, hook: Any):
        self._hook = hook

    def fire(self, **kwargs: Any) -> Any:
        arrival = _current.get()
        if arrival is not None:
            if kwargs.get("response_time") is not None:
                kwargs["response_time"] += arrival.late_ms
            arrival.learn(kwargs.get("request_type", ""), kwargs.get("name", ""))
        return self._hook.fire(**kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._hook, attr)


class OpenModelUser(User):
    """Mixin base: the user starts its tasks at the arrival rate of `arrivals` instead of one after another.

    Defaults: max_concurrency 100, fixed_count 1 (one user carries the whole rate).
    Invariant: at most max_concurrency // fixed_count of its arrivals are in flight; every other due arrival is one
    failed request event ("dropped: overloaded"). Example: see the module docstring.
    """

    abstract = True
    arrivals: Any = None
    max_concurrency: Any = 100
    fixed_count = 1

    def __init__(self, environment):
        self._open = _states.get(type(self)) or _prepare(type(self))
        share = self._open.model.slots_per_generator
        if isinstance(getattr(self, "concurrency", None), int):  # FastHttpUser's pool: a connection per request in flight
            self.concurrency = max(self.concurrency, share)
        super().__init__(environment)
        self._slots = Slots(share)
        self._in_flight = Group()
        client = getattr(self, "client", None)
        if client is not None and hasattr(client, "request_event"):
            client.request_event = _FromIntendedStart(client.request_event)

    def run(self):  # Locust's User.run, with the arrivals in place of the task loop (`final` binds type checkers only)
        self._state = LOCUST_STATE_RUNNING
        self._taskset_instance = DefaultTaskSet(self)
        try:
            try:
                self.on_start()
            except Exception as exc:
                logger.error("%s\n%s", exc, traceback.format_exc())
                if not isinstance(exc, (StopUser, StopTest)):
                    self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
                raise
            self._generate()
        except (GreenletExit, StopUser, StopTest):
            self._in_flight.kill(block=False)
            self.on_stop()

    def _generate(self) -> None:
        started_at = _run.start()
        for due_t in arrival_times(self._open.model.per_generator, random.random(), CLOCK() - started_at):
            due = started_at + due_t
            delay = due - CLOCK()
            if delay > 0:
                self._state = LOCUST_STATE_WAITING  # a stop kills the user here at once
                gevent.sleep(delay)
                self._state = LOCUST_STATE_RUNNING
            self._arrive(due)
        self._state = LOCUST_STATE_WAITING
        while True:  # after the last stage: idle until the run stops
            gevent.sleep(IDLE_S)

    def _arrive(self, due: float) -> None:
        task = self._taskset_instance.get_next_task()
        state = self._open
        state.arrivals += 1
        if not self._slots.try_acquire():
            state.dropped += 1
            request_type, name = state.names.get(task) or ("ARRIVAL", getattr(task, "__name__", repr(task)))
            self.environment.events.request.fire(request_type=request_type, name=name, response_time=None,
                                                 response_length=0, exception=DROPPED, context=self.context())
            return
        self._in_flight.spawn(self._run_arrival, task, Arrival(due, self._slots, state.names, task))

    def _run_arrival(self, task: Any, arrival: Arrival) -> None:
        _current.set(arrival)  # each greenlet has a context of its own: this is seen by this arrival only
        arrival.began(CLOCK())
        try:
            self._taskset_instance.execute_task(task)
        except (RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet):
            pass  # the task ended early; the next arrival picks a task anew
        except (StopUser, StopTest):
            self._group.killone(self._greenlet, block=False)
        except Exception as exc:
            self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
            logger.error("%s\n%s", exc, traceback.format_exc())
        finally:
            arrival.settle()


# -- checks before the run ----------------------------------------------------------------------------------
def _source(cls: type) -> str:
    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if not path:
        return cls.__module__
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _prepare(cls: type) -> _ClassState:
    """Check one class's settings and keep them for its users; raises ArrivalError with every problem."""
    where = f"{_source(cls)}: {cls.__name__}"
    problems: list[str] = []
    mro = cls.__mro__
    others = [c for c in mro if issubclass(c, User) and not issubclass(c, OpenModelUser) and c is not User]
    if others and mro.index(others[0]) < mro.index(OpenModelUser):
        problems.append(f"{where}: OpenModelUser must come first among the bases, e.g. class {cls.__name__}"
                        f"(OpenModelUser, {others[0].__name__}), so that it sets up the client and replaces the task loop")
    if not cls.tasks:
        problems.append(f"{where}.tasks: no tasks; each arrival starts one task (use @task)")
    tasksets = sorted({t.__name__ for t in cls.tasks if isinstance(t, type) and issubclass(t, TaskSet)})
    if tasksets:
        problems.append(f"{where}.tasks: a TaskSet ({', '.join(tasksets)}) runs a closed loop of its own; "
                        "the open model starts plain @task functions")
    try:
        model = build_open_model(cls.arrivals, cls.max_concurrency, cls.fixed_count, where)
    except ArrivalError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ArrivalError(problems)
    state = _states[cls] = _ClassState(model)
    return state


def _user_count_problems(environment, classes: list[type]) -> list[str]:
    """Headless runs only: -u must cover every fixed_count, or a generator (and its share of the rate) would be missing."""
    options = environment.parsed_options
    if (options is None or not getattr(options, "headless", False) or environment.shape_class is not None
            or isinstance(environment.runner, WorkerRunner)):
        return []
    num_users = getattr(options, "num_users", None)
    needed = sum(c.fixed_count for c in environment.user_classes if c.fixed_count)
    if not isinstance(num_users, int) or num_users >= needed:
        return []
    counts = ", ".join(f"{c.__name__} {c.fixed_count}" for c in classes)
    return [f"-u/--users {num_users} is fewer than the {needed} users of fixed_count ({counts}): each carries "
            f"1/fixed_count of its class's arrivals, so one that is not spawned loses its share; use -u {needed} or more"]


@events.init.add_listener
def _check_before_the_run(environment, **_kwargs):
    classes = [c for c in environment.user_classes or [] if isinstance(c, type) and issubclass(c, OpenModelUser)]
    if not classes:
        return
    problems: list[str] = []
    for cls in classes:
        try:
            _prepare(cls)
        except ArrivalError as exc:
            problems.extend(exc.problems)
    problems.extend(_user_count_problems(environment, classes))
    if problems:  # SystemExit passes Locust's hook guard: exit 2, no traceback
        sys.stderr.write("".join(f"chaos-events: {problem}\n" for problem in problems))
        sys.stderr.flush()
        sys.exit(2)


@events.test_start.add_listener
def _on_test_start(**_kwargs):
    _run.started_at = CLOCK()
    for state in _states.values():
        state.arrivals = state.dropped = 0


@events.test_stop.add_listener
def _on_test_stop(**_kwargs):
    for cls, state in _states.items():
        if state.arrivals:
            print(f"chaos-events: open model {cls.__name__}: {state.arrivals} arrivals, {state.dropped} dropped "
                  f"because max_concurrency ({state.model.max_concurrency}) was reached", flush=True)
