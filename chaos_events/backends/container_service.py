"""The Service interface for a Docker container, over chaos_events.backends.docker (which imports docker lazily).

Must not import locust, gevent or prometheus_client. `acquire` resolves the container (refusing one that did not opt
in) and pins its id; every later call finds it by that id, so a revert acts on the same container even after it was
renamed, and says so clearly when it was removed.

Example:
    service = ContainerService(Target("kafka", TargetKind.CONTAINER, ContainerTarget(name="k")), state, save)
    service.acquire("pause"); service.pause(); ...; service.resume_if_paused()
"""
from __future__ import annotations

from typing import Any

from chaos_events.backends import docker as containers
from chaos_events.backends import process as processes
from chaos_events.backends.services import SETTLE_S, Service, ServiceStatus
from chaos_events.errors import ChaosError, InjectionError, RevertError

_LIVE = ("running", "paused", "restarting")
_STATUS = {"running": ServiceStatus.RUNNING, "restarting": ServiceStatus.RUNNING, "paused": ServiceStatus.PAUSED}


class ContainerService(Service):
    """A container target. State: container_id (pinned by acquire), the limits before a throttle."""

    kind_word = "container"

    def _container(self, error: type[ChaosError] = RevertError) -> Any | None:
        """The acquired container; None when nothing was acquired. `error` when it no longer exists."""
        container_id = self.state.get("container_id")
        if not container_id:
            return None
        container = containers.by_id(container_id, self.name, error)
        if container is None:
            raise error(f"{self.name}: container {container_id[:12]} no longer exists")
        return container

    def _acquire(self, action: str, want_running: bool, **extra: Any) -> Any:
        container = containers.resolve_container(self.target.spec, self.name, self.extra_allowed)
        current = containers.status(container, self.name)
        if want_running and current != "running":
            raise InjectionError(f"{action}: container {container.name!r} is {current}, not running")
        if not want_running and current in _LIVE:
            raise InjectionError(f"{action}: container {container.name!r} is already {current}; {action} applies to a stopped target")
        self._pin(container_id=container.id, **extra)
        return container

    # -- inject side -------------------------------------------------------------------------------
    def acquire(self, action: str) -> None:
        self._acquire(action, want_running=True)

    def acquire_any(self, action: str) -> None:
        """Restart and throttle act on a container in any state."""
        container = containers.resolve_container(self.target.spec, self.name, self.extra_allowed)
        self._pin(container_id=container.id)

    def acquire_stopped(self, action: str) -> None:
        self._acquire(action, want_running=False, starting=True)

    def stop(self, timeout_s: float) -> None:
        containers.stop(self._container(InjectionError), self.name, timeout_s)

    def start(self, error: type[ChaosError] = InjectionError) -> None:
        containers.start(self._container(error), self.name, error)

    def restart(self, timeout_s: float) -> None:
        containers.restart(self._container(InjectionError), self.name, timeout_s)

    def kill(self, signal_name: str) -> None:
        containers.kill(self._container(InjectionError), signal_name, self.name)

    def pause(self) -> None:
        containers.pause(self._container(InjectionError), self.name)

    def throttle(self, cpus: float | None, memory_bytes: int | None) -> None:
        container = self._container(InjectionError)
        previous = containers.limits(container, self.name)
        body = containers.throttle_update(previous, cpus, memory_bytes)
        self.state.update(previous=previous, applied=body)
        self.save()
        containers.update(container, body, self.name)

    # -- revert side -------------------------------------------------------------------------------
    def status(self, error: type[ChaosError] = RevertError) -> ServiceStatus:
        container = self._container(error)
        if container is None:
            return ServiceStatus.GONE
        return _STATUS.get(containers.status(container, self.name, error), ServiceStatus.STOPPED)

    def resume_if_paused(self, error: type[ChaosError] = RevertError) -> None:
        container = self._container(error)
        if container is not None and containers.status(container, self.name, error) == "paused":
            containers.unpause(container, self.name, error)

    def ensure_running(self) -> None:
        container = self._container()
        if container is None:
            return
        current = containers.status(container, self.name, RevertError)
        if current == "paused":
            containers.unpause(container, self.name, RevertError)
        elif current not in ("running", "restarting"):
            containers.start(container, self.name, RevertError)

    def verify_running(self, action: str) -> None:
        container = self._container()
        if container is None:
            return
        ok = processes.wait_until(lambda: containers.status(container, self.name, RevertError) == "running", SETTLE_S, 0.2)
        if not ok:
            raise RevertError(f"{action} {self.name}: container {container.name!r} is {container.status}, not running")

    def verify_resumed(self, action: str) -> None:
        self.verify_running(action)

    def stop_what_was_started(self, timeout_s: float) -> None:
        if not self.state.get("starting"):
            return
        container = self._container()
        if container is not None and containers.status(container, self.name, RevertError) in _LIVE:
            containers.stop(container, self.name, timeout_s, RevertError)

    def verify_stopped(self, action: str) -> None:
        if not self.state.get("starting"):
            return
        container = self._container()
        if container is not None and containers.status(container, self.name, RevertError) in _LIVE:
            raise RevertError(f"{action} {self.name}: container {container.name!r} is still {container.status}")

    def restore_limits(self) -> None:
        if "applied" not in self.state:
            return
        container = self._container()
        restore = containers.restore_update(self.state["previous"], self.state["applied"])
        containers.update(container, restore, self.name, RevertError)

    def verify_limits_restored(self) -> None:
        if "applied" not in self.state:
            return
        container = self._container()
        now = containers.limits(container, self.name, RevertError)
        differ = containers.limits_differ(self.state["previous"], now, self.state["applied"])
        if differ:
            raise RevertError(f"throttle {self.name}: limits not restored: {', '.join(differ)}")
