"""The container watchdog's decisions, with the owner container's state given and a test-only fault in the journal:
it reverts only when the owner is not running and the journal lists faults that are not closed, keeps watching
afterwards (a stack runs several masters), and retries a failed revert at most every RETRY_S.
(Real containers and `docker kill`: tests/integration/test_container_watchdog.py and test_compose_gameday.py.)
"""
from __future__ import annotations


import pytest

from chaos_events.errors import InjectionError, RevertError
from chaos_events.faults.base import Fault, FaultContext, FaultParams
from chaos_events.run import container_watchdog
from chaos_events.run.container_watchdog import ContainerWatchdog
from chaos_events.run.journal import Journal, read_journal
from chaos_events.scenario.model import Target, TargetKind
from tests.helpers import registered_faults

REVERTS: list[str] = []


class MarkParams(FaultParams):
    mark: str = ""
    fail: bool = False


class MarkFault(Fault):
    """Test-only: its revert records its mark (or fails when `fail`)."""

    type_name = "_test_container_watchdog_mark"
    Params = MarkParams
    target_kinds = frozenset({TargetKind.HOST})

    def inject(self, ctx: FaultContext) -> None:
        self.state["on"] = True

    def revert(self, ctx: FaultContext) -> None:
        REVERTS.append(self.params.mark)
        if self.params.fail:
            raise RevertError(f"{self.params.mark} will not revert")


@pytest.fixture(autouse=True)
def _registered():
    REVERTS.clear()
    with registered_faults(MarkFault):
        yield
    REVERTS.clear()


def _journal(tmp_path, *marks: str, fail: bool = False) -> Journal:
    journal = Journal(tmp_path / "journal.json", run_id="r1")
    for i, mark in enumerate(marks):
        journal.add(f"f{i}#1", MarkFault(MarkParams(mark=mark, fail=fail), Target("box", TargetKind.HOST, {}), state={"on": True}))
    return journal


def _watchdog(tmp_path, states: list[str]) -> tuple[ContainerWatchdog, list[str]]:
    lines: list[str] = []
    feed = iter(states)
    return ContainerWatchdog("master", str(tmp_path / "journal.json"), 0.01, lines.append, lambda name: next(feed)), lines


def test_a_running_or_paused_owner_keeps_its_faults(tmp_path):
    _journal(tmp_path, "a")
    watchdog, lines = _watchdog(tmp_path, ["running", "paused", "restarting"])
    assert [watchdog.step() for _ in range(3)] == [0, 0, 0]
    assert REVERTS == [] and len(read_journal(tmp_path / "journal.json")["entries"]) == 1
    assert lines == ["container watchdog: master is running", "container watchdog: master is paused",
                     "container watchdog: master is restarting"]


@pytest.mark.parametrize("state", ["exited", "dead", "missing", "created"])
def test_an_owner_that_is_not_running_gets_its_faults_reverted_last_first(tmp_path, state):
    _journal(tmp_path, "first", "second")
    watchdog, lines = _watchdog(tmp_path, ["running", state, state])
    assert watchdog.step() == 0 and REVERTS == []
    assert watchdog.step() == 0
    assert REVERTS == ["second", "first"]
    assert read_journal(tmp_path / "journal.json")["entries"] == {}
    assert any("reverted 2 fault(s), 0 failed" in line for line in lines)
    assert watchdog.step() == 0 and REVERTS == ["second", "first"]  # still watching, nothing left to do


def test_a_closed_journal_or_no_journal_is_left_alone(tmp_path):
    watchdog, _ = _watchdog(tmp_path, ["exited", "exited"])
    assert watchdog.step() == 0  # no journal yet: the master has not started a run
    journal = _journal(tmp_path, "left-by-a-failed-revert")
    journal.close()
    assert watchdog.step() == 0 and REVERTS == []


def test_a_failed_revert_is_retried_but_not_at_every_look(tmp_path, monkeypatch):
    _journal(tmp_path, "stuck", fail=True)
    now = [1000.0]
    monkeypatch.setattr(container_watchdog.time, "monotonic", lambda: now[0])
    watchdog, lines = _watchdog(tmp_path, ["exited"] * 3)
    assert watchdog.step() == 1 and REVERTS == ["stuck"]
    now[0] += 1
    assert watchdog.step() == 1 and REVERTS == ["stuck"]  # within RETRY_S: not again
    now[0] += container_watchdog.RETRY_S
    assert watchdog.step() == 1 and REVERTS == ["stuck", "stuck"]
    assert any("retrying in" in line and "chaos-events revert --journal" in line for line in lines)


def test_an_engine_that_does_not_answer_is_logged_not_fatal(tmp_path):
    _journal(tmp_path, "a")
    lines: list[str] = []

    def unreachable(name):
        raise InjectionError("cannot reach the Docker engine")

    watchdog = ContainerWatchdog("master", str(tmp_path / "journal.json"), 0.01, lines.append, unreachable)
    assert watchdog.step() == 0 and REVERTS == []
    assert lines == ["container watchdog: cannot inspect 'master': cannot reach the Docker engine"]
