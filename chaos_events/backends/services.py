"""One interface for the things service faults act on: a local process or a Docker container.

Must not import locust, gevent, docker (the container implementation imports it lazily) or prometheus_client.
The service faults (chaos_events.faults.service) speak only this interface; each implementation keeps what it
must remember (a pid and its start time, a container id, the limits before a throttle) in the fault's own state
dict, and calls `save` before each side effect, so a revert in another process (the journal, after a SIGKILL)
acts on the very same process or container.

Every method raises the `error` class it is given (InjectionError while injecting, RevertError while reverting),
with text that names the target.

Example:
    service = ProcessService(target, fault.state, save=ctx.save_state)   # or ContainerService
    service.acquire("pause"); service.pause()            # inject
    service.resume_if_paused(RevertError)               # revert: idempotent, safe before acquire
"""
from __future__ import annotations

import abc
import enum
from typing import Any, Callable

from chaos_events.errors import ChaosError, InjectionError, RevertError
from chaos_events.scenario.model import Target

SETTLE_S = 10.0     # how long a verification waits for a target to come back (or to die)


class ServiceStatus(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"     # exists (a container) or can be started (a process), but does not run
    GONE = "gone"           # the container was removed


class Service(abc.ABC):
    """A process or container under a fault. Invariant: `state` holds its identity once `acquire` ran.

    `acquire(action)` finds the service now and pins it (it must be running; `acquire_stopped` for `start`).
    The reverting methods do nothing when nothing was acquired, so they are safe before and after a failed inject.
    """

    kind_word = "service"

    def __init__(self, target: Target, state: dict, save: Callable[[], None], log: Callable[[str], None] = print,
                 run_dir: str = ".run", extra_allowed: tuple[str, ...] = ()):
        self.target = target
        self.name = target.name
        self.state = state
        self.save = save
        self.log = log
        self.run_dir = run_dir
        self.extra_allowed = extra_allowed

    @property
    def acquired(self) -> bool:
        return bool(self.state.get("acquired"))

    def _pin(self, **identity: Any) -> None:
        self.state.update(identity, acquired=True)
        self.save()

    # -- inject side -------------------------------------------------------------------------------
    @abc.abstractmethod
    def acquire(self, action: str) -> None:
        """Find the service now; it must be running. Pins its identity in state."""

    def acquire_any(self, action: str) -> None:
        """Find the service now, in whatever state it is (restart, throttle). A process must still run."""
        self.acquire(action)

    @abc.abstractmethod
    def acquire_stopped(self, action: str) -> None:
        """Find the service now; it must NOT be running (for `start`)."""

    @abc.abstractmethod
    def stop(self, timeout_s: float) -> None: ...

    @abc.abstractmethod
    def start(self, error: type[ChaosError] = InjectionError) -> None: ...

    @abc.abstractmethod
    def restart(self, timeout_s: float) -> None: ...

    @abc.abstractmethod
    def kill(self, signal_name: str) -> None: ...

    @abc.abstractmethod
    def pause(self) -> None: ...

    def throttle(self, cpus: float | None, memory_bytes: int | None) -> None:
        raise InjectionError(f"throttle: target {self.name!r} is a {self.kind_word}; only containers can be throttled")

    # -- revert side (idempotent; nothing acquired -> nothing to do) ---------------------------------
    @abc.abstractmethod
    def status(self, error: type[ChaosError] = RevertError) -> ServiceStatus: ...

    @abc.abstractmethod
    def resume_if_paused(self, error: type[ChaosError] = RevertError) -> None: ...

    @abc.abstractmethod
    def ensure_running(self) -> None:
        """Start it again (or resume it) when it does not run: the revert of stop, kill and restart."""

    @abc.abstractmethod
    def verify_running(self, action: str) -> None:
        """RevertError unless it runs (and is not paused) within SETTLE_S."""

    @abc.abstractmethod
    def verify_resumed(self, action: str) -> None:
        """RevertError unless the paused service runs again (a process: the very same one)."""

    @abc.abstractmethod
    def stop_what_was_started(self, timeout_s: float) -> None:
        """The revert of `start`."""

    @abc.abstractmethod
    def verify_stopped(self, action: str) -> None: ...

    def restore_limits(self) -> None:
        """The revert of `throttle`."""

    def verify_limits_restored(self) -> None:
        """RevertError when the limits differ from those before the throttle."""
