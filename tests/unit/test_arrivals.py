"""OpenModelUser inside a real Locust Environment and its own stats, without a network or a sleep: requests are timed
from the arrival's due time, a dropped arrival is one failure with no latency, a Kafka-style hold keeps the slot until
it settles, and the class-level checks refuse what the open model cannot run."""
from __future__ import annotations

from types import SimpleNamespace

import gevent
import pytest
from locust import TaskSet, User, task
from locust.env import Environment
from locust.event import Events
from locust.user.task import DefaultTaskSet

from chaos_events.load.arrival_rate import ArrivalError, Slots
from chaos_events.locust_plugin import arrivals
from chaos_events.locust_plugin.arrivals import Arrival, OpenModelUser, constant_rate, hold_for_delivery

MEASURED_MS = 12.0
SOURCE = "tests/unit/test_arrivals.py"


class FakeClient:
    """A client like Locust's own: it fires its `request_event` once per request, with the time it measured."""

    def __init__(self, request_event):
        self.request_event = request_event

    def get(self, name: str) -> None:
        self.request_event.fire(request_type="GET", name=name, response_time=MEASURED_MS, response_length=0,
                                exception=None, context={})


class ClientUser(User):
    abstract = True

    def __init__(self, environment):
        super().__init__(environment)
        self.client = FakeClient(environment.events.request)


class Api(OpenModelUser, ClientUser):
    arrivals = constant_rate(10)
    max_concurrency = 1

    @task
    def visit(self):
        self.client.get("/")


@pytest.fixture
def env():
    arrivals._states.pop(Api, None)  # the names a class's tasks learnt, and its tallies, start afresh
    environment = Environment(user_classes=[Api], events=Events())
    runner = environment.create_local_runner()  # registers Locust's own stats listener
    try:
        yield environment
    finally:
        runner.quit()


def ready_user(environment) -> Api:
    user = Api(environment)
    user._taskset_instance = DefaultTaskSet(user)
    return user


def run_arrival(user: Api, due: float) -> None:
    """One arrival that was due at `due`, run to its end in a greenlet of its own (as the generator does)."""
    assert user._slots.try_acquire()
    gevent.spawn(user._run_arrival, Api.visit, Arrival(due, user._slots, user._open.names, Api.visit)).join()


def test_a_late_arrival_is_timed_from_its_due_time_in_locusts_own_stats(env):
    user = ready_user(env)
    run_arrival(user, due=arrivals.CLOCK() - 0.25)  # due a quarter of a second ago: it starts that late
    entry = env.stats.get("/", "GET")
    assert entry.num_requests == 1 and entry.max_response_time >= MEASURED_MS + 250
    assert user._slots.in_flight == 0


def test_outside_an_arrival_the_clients_time_is_left_as_measured(env):
    user = ready_user(env)
    user.client.get("/")
    assert env.stats.get("/", "GET").max_response_time == MEASURED_MS


def test_a_dropped_arrival_is_one_failure_without_latency_under_the_tasks_last_name(env):
    user = ready_user(env)
    assert user._slots.try_acquire()  # the only slot is taken: the next arrivals cannot start
    user._arrive(arrivals.CLOCK())
    early = env.stats.get("visit", "ARRIVAL")  # the task has not made a request yet
    assert (early.num_requests, early.num_failures, early.num_none_requests) == (1, 1, 1)
    user._slots.release()
    run_arrival(user, due=arrivals.CLOCK())  # now it has: GET /
    assert user._slots.try_acquire()
    user._arrive(arrivals.CLOCK())
    entry = env.stats.get("/", "GET")
    assert (entry.num_requests, entry.num_failures, entry.num_none_requests) == (2, 1, 1)
    assert [(e.method, e.name, e.error) for e in env.stats.errors.values()] == [
        ("ARRIVAL", "visit", "dropped: overloaded"), ("GET", "/", "dropped: overloaded")]
    assert (user._slots.started, user._slots.dropped) == (3, 2) and user._open.dropped == 2


def test_a_held_delivery_keeps_the_slot_until_it_settles():
    slots = Slots(1)
    assert slots.try_acquire()
    names: dict = {}
    arrival = Arrival(0.0, slots, names, "send")
    held = []

    def task_body():
        arrivals._current.set(arrival)
        held.append(hold_for_delivery("KAFKA", "produce events"))
        held.append(hold_for_delivery("KAFKA", "produce events"))

    gevent.spawn(task_body).join()
    assert held == [arrival, arrival] and names == {"send": ("KAFKA", "produce events")}
    arrival.settle()  # the task returned
    assert slots.in_flight == 1
    held[0].settle()
    assert slots.in_flight == 1
    held[1].settle()  # the last delivery was reported
    assert slots.in_flight == 0
    assert hold_for_delivery("KAFKA", "produce events") is None  # outside an arrival: the closed model


# -- class-level checks ---------------------------------------------------------------------------------------------
def refused(cls) -> list[str]:
    with pytest.raises(ArrivalError) as caught:
        arrivals._prepare(cls)
    return caught.value.problems


def test_a_user_without_tasks_or_with_a_taskset_is_refused():
    class Idle(OpenModelUser, ClientUser):
        arrivals = constant_rate(1)

    class Nested(TaskSet):
        @task
        def a(self):
            pass

    class Looping(OpenModelUser, ClientUser):
        arrivals = constant_rate(1)
        tasks = [Nested]

    assert refused(Idle) == [f"{SOURCE}: Idle.tasks: no tasks; each arrival starts one task (use @task)"]
    assert refused(Looping) == [f"{SOURCE}: Looping.tasks: a TaskSet (Nested) runs a closed loop of its own; the open "
                                "model starts plain @task functions"]


def test_a_user_without_arrivals_is_refused():
    class Forgot(OpenModelUser, ClientUser):
        arrival_rate = constant_rate(5)  # not the attribute's name

        @task
        def a(self):
            pass

    assert refused(Forgot) == [f"{SOURCE}: Forgot.arrivals: expected constant_rate(RATE_PER_S) or "
                               "stepped([(DURATION_S, RATE_PER_S), ...]), got None"]


def test_a_headless_run_with_fewer_users_than_generators_is_refused():
    class Wide(OpenModelUser, ClientUser):
        arrivals = constant_rate(5)
        fixed_count = 3

    def environment(num_users, headless=True):
        return SimpleNamespace(parsed_options=SimpleNamespace(headless=headless, num_users=num_users), shape_class=None,
                               runner=None, user_classes=[Wide, Api])

    assert arrivals._user_count_problems(environment(2), [Wide, Api]) == [
        "-u/--users 2 is fewer than the 4 users of fixed_count (Wide 3, Api 1): each carries 1/fixed_count of its "
        "class's arrivals, so one that is not spawned loses its share; use -u 4 or more"]
    assert arrivals._user_count_problems(environment(4), [Wide, Api]) == []
    assert arrivals._user_count_problems(environment(2, headless=False), [Wide, Api]) == []  # chosen in the web UI
