"""docker pause/unpause retried over runc's freezer race ("unable to freeze", moby/moby#48205), and only over it.

The container object is a stand-in with the docker SDK's surface (pause, unpause, reload, status, name) that fails
the way the engine does; what is under test is the harness's retry and its error text, not Docker.
"""
from __future__ import annotations

import docker
import pytest

from chaos_events.backends import docker as containers
from chaos_events.errors import InjectionError, RevertError


class FlakyContainer:
    def __init__(self, failures: list[str], really_pauses_on_failure: bool = False):
        self.name, self.status, self.calls = "demo-kafka", "running", 0
        self.failures, self.really = list(failures), really_pauses_on_failure

    def reload(self) -> None:
        pass

    def _act(self, wanted: str) -> None:
        self.calls += 1
        if self.failures:
            if self.really:
                self.status = wanted
            raise docker.errors.APIError(self.failures.pop(0))
        self.status = wanted

    def pause(self) -> None:
        self._act("paused")

    def unpause(self) -> None:
        self._act("running")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(containers, "FREEZE_RETRY_S", 0.0)


FREEZE = "Cannot pause container x: OCI runtime pause failed: unable to freeze: unknown"


def test_a_transient_freeze_failure_is_retried_until_it_pauses():
    container = FlakyContainer([FREEZE, FREEZE])
    assert containers.pause(container, "broker") == 3
    assert container.status == "paused" and container.calls == 3


def test_an_error_after_which_the_container_is_paused_counts_as_done():
    container = FlakyContainer([FREEZE], really_pauses_on_failure=True)
    assert containers.pause(container, "broker") == 1 and container.calls == 1


def test_the_freezer_race_that_never_ends_fails_with_the_attempts():
    container = FlakyContainer([FREEZE] * containers.FREEZE_ATTEMPTS)
    with pytest.raises(InjectionError) as err:
        containers.pause(container, "broker")
    assert str(err.value) == (f"container target 'broker': cannot pause container 'demo-kafka': {FREEZE} "
                              f"(after {containers.FREEZE_ATTEMPTS} attempts)")


def test_a_real_refusal_is_not_retried():
    container = FlakyContainer(["Container demo-kafka is not running"])
    with pytest.raises(RevertError, match="cannot unpause container 'demo-kafka': Container demo-kafka is not running$"):
        containers.unpause(container, "broker", error=RevertError)
    assert container.calls == 1
