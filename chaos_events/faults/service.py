"""Service faults: stop, start, restart, kill, pause and throttle a local process or a Docker container.

Must not import locust, gevent, docker or prometheus_client. Every fault speaks the one Service interface
(chaos_events.backends.services): a ProcessService or a ContainerService, chosen by the target's kind; no fault
branches on the kind itself.

Revert semantics (each revert is idempotent and works from `self.state`, saved before every side effect):
- stop     -> start it again. A process needs `restart` (or `command`) in its target; the plan check refuses otherwise.
- start    -> (a target that was stopped) stop it again. Starting a target that already runs is an InjectionError.
- restart  -> nothing to undo; the revert makes sure the target runs (it starts it when the restart broke halfway).
- kill     -> start it again when it died, as for stop. `signal` (default SIGKILL) is a name like SIGTERM.
              `restart: false` (a parameter of the fault) means "leave it dead": the scenario tests non-recovery, so
              revert and its verification do nothing, and a process target needs no restart command.
- pause    -> resume (SIGCONT / docker unpause); a process must be the very one that was paused.
- throttle -> (containers only) put back the CPU and memory limits recorded before the change.
`stop`, `start` and `restart` take `timeout_s` (grace between SIGTERM and SIGKILL; for `start`, when its revert stops it).
On a `kafka_cluster` target, every fault but throttle takes `broker:`, the broker's role, resolved at inject
(faults/kafka_broker.py): `{leader: {topic: events, partition: 0}}`, `{controller: true}` or `{id: 2}`.

Example (scenario):
    targets: {broker: {process: {pidfile: .run/broker.pid, restart: [python, -m, chaos_events.demo, start-part, broker]}},
              kafka: {container: {name: demo-kafka}}}
    faults:
      - {at: 10s, for: 15s, fault: pause, target: broker}
      - {at: 40s, for: 20s, fault: throttle, target: kafka, params: {cpus: 0.2, memory_bytes: 64MiB}}
      - {at: 70s, for: 10s, fault: kill, target: broker, params: {signal: SIGKILL}}
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from chaos_events.backends.container_service import ContainerService
from chaos_events.backends.process_service import ProcessService, signal_number
from chaos_events.backends.services import Service
from chaos_events.errors import InjectionError
from chaos_events.faults.base import Fault, FaultContext, FaultParams, register
from chaos_events.faults.kafka_broker import (
    ServiceParams, broker_target, note_after, observations, plan_problems, role_preflight,
)
from chaos_events.scenario.fields import Flag, Number, Seconds, SizeBytes, Text, fail
from chaos_events.scenario.model import Target, TargetKind

_SERVICES: dict[TargetKind, type[Service]] = {TargetKind.PROCESS: ProcessService, TargetKind.CONTAINER: ContainerService}


# -- parameters ----------------------------------------------------------------------------------------------
class StopParams(ServiceParams):
    timeout_s: Seconds = Field(10.0, description="grace between SIGTERM (docker stop) and SIGKILL; for start, when "
                                                 "its revert stops the target again")


class KillParams(ServiceParams):
    signal: Text = Field("SIGKILL", description="the signal's name, e.g. SIGKILL, SIGTERM")
    restart: Flag = Field(True, description="false: leave it dead (the scenario tests non-recovery)")

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str) -> str:
        try:
            signal_number(name)
        except ValueError as exc:
            raise fail(str(exc)) from None
        return name


class ThrottleParams(FaultParams):
    cpus: Number | None = Field(None, ge=0.01, description="CPUs the container may use, e.g. 0.25")
    memory_bytes: SizeBytes | None = Field(None, ge=6 * 2**20, description="memory limit (at least 6MiB, Docker's minimum)")

    @model_validator(mode="after")
    def _something_to_do(self) -> "ThrottleParams":
        if self.cpus is None and self.memory_bytes is None:
            raise fail("throttle needs at least one of: cpus, memory_bytes")
        return self


# -- shared behaviour ---------------------------------------------------------------------------------------
class ServiceFault(Fault):
    """A fault on one Service. Subclasses say whether their revert starts the target (`restarts`)."""

    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset({TargetKind.PROCESS, TargetKind.CONTAINER,
                                                               TargetKind.KAFKA_CLUSTER})
    start_command_reason: ClassVar[str] = ""

    @classmethod
    def restarts(cls, params: Any) -> bool:
        """Whether this fault's revert (or inject) starts the process, so a process target needs a start command."""
        return False

    @classmethod
    def check_plan(cls, params: Any, target: Target) -> list[str]:
        problems = plan_problems(params, target, cls.restarts(params), cls.start_command_reason)
        if target.kind is TargetKind.PROCESS and cls.restarts(params) and not target.spec.start_argv():
            problems.append(f"target {target.name!r} has no `restart` or `command` to start the process; "
                            f"{cls.start_command_reason}")
        return problems

    @classmethod
    def preflight(cls, params: Any, target: Target) -> list[str]:
        return role_preflight(params, target)

    def service(self, ctx: FaultContext) -> Service:
        """This fault's service; its identity lives in self.state, so a journal rebuild finds the same one. On a
        kafka_cluster, the broker the role names (resolved at the first call, then pinned in self.state)."""
        if self.target.kind not in self.target_kinds:
            kinds = ", ".join(sorted(k.value for k in self.target_kinds))
            raise InjectionError(f"{self.type_name}: target {self.target.name!r} is a {self.target.kind.value}; expected one of: {kinds}")
        target = self.target
        if target.kind is TargetKind.KAFKA_CLUSTER:
            target = broker_target(target, self.params, self.state, ctx)
        return _SERVICES[target.kind](target, self.state, ctx.save_state, ctx.log, ctx.run_dir, ctx.extra_allowed)

    def observations(self) -> dict:
        return observations(self.state)

    def describe(self) -> str:
        role = getattr(self.params, "broker", None)
        if role is None:
            return super().describe()
        rest = ", ".join(f"{k}={v}" for k, v in self.params.model_dump(exclude={"broker"}).items())
        aimed = role.describe() + (f" = broker {self.state['broker_id']}" if "broker_id" in self.state else "")
        return f"{self.type_name} {self.target.name} ({aimed}" + (f", {rest})" if rest else ")")

    def reverting(self, ctx: FaultContext) -> Service | None:
        """The service for revert and verify_reverted; None when a role was never resolved (nothing was done). On a
        leader or controller role, first notes who holds it now (once)."""
        if self.target.kind is TargetKind.KAFKA_CLUSTER:
            if "broker_id" not in self.state:
                return None
            note_after(self.target, self.params, self.state, ctx)
        return self.service(ctx)

    def _refuse_bad_target(self) -> None:
        problems = self.check_plan(self.params, self.target)
        if problems:
            raise InjectionError(f"{self.type_name}: {problems[0]}")


class _StartsAgain(ServiceFault):
    """Faults whose revert starts the target again: stop, restart, kill (unless restart: false)."""

    def revert(self, ctx: FaultContext) -> None:
        service = self.reverting(ctx)
        if service is not None and self.restarts(self.params):
            service.ensure_running()

    def verify_reverted(self, ctx: FaultContext) -> None:
        service = self.reverting(ctx)
        if service is not None and self.restarts(self.params):
            service.verify_running(self.type_name)


# -- the faults ----------------------------------------------------------------------------------------------
@register
class Stop(_StartsAgain):
    """Stop the target (SIGTERM, then SIGKILL after `timeout_s` / docker stop). Revert starts it again."""

    type_name = "stop"
    Params = StopParams
    summary = "stop a process or container; revert starts it again"
    start_command_reason = "stop needs one so that its revert can start it again"

    @classmethod
    def restarts(cls, params: Any) -> bool:
        return True

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        service = self.service(ctx)
        service.acquire("stop")
        service.stop(self.params.timeout_s)


@register
class Start(ServiceFault):
    """Start a target that is stopped (a standby, a consumer that should not run yet). Revert stops it again."""

    type_name = "start"
    Params = StopParams         # timeout_s: the grace the revert gives it when stopping it again
    summary = "start a stopped process or container; revert stops it again"
    start_command_reason = "start needs one to start it"

    @classmethod
    def restarts(cls, params: Any) -> bool:
        return True

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        service = self.service(ctx)
        service.acquire_stopped("start")
        service.start()

    def revert(self, ctx: FaultContext) -> None:
        if (service := self.reverting(ctx)) is not None:
            service.stop_what_was_started(self.params.timeout_s)

    def verify_reverted(self, ctx: FaultContext) -> None:
        if (service := self.reverting(ctx)) is not None:
            service.verify_stopped("start")


@register
class Restart(_StartsAgain):
    """Stop the target and start it again at once. Nothing to undo; the revert makes sure it runs."""

    type_name = "restart"
    Params = StopParams
    summary = "stop and start a process or container; revert makes sure it runs"
    start_command_reason = "restart needs one to start it again"

    @classmethod
    def restarts(cls, params: Any) -> bool:
        return True

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        service = self.service(ctx)
        service.acquire_any("restart")
        service.restart(self.params.timeout_s)


@register
class Kill(_StartsAgain):
    """Send `signal` (default SIGKILL) to the target. Revert starts it again if it died, unless `restart: false`."""

    type_name = "kill"
    Params = KillParams
    summary = "send a signal (default SIGKILL); revert starts it again unless restart: false"
    start_command_reason = ("kill needs one so that its revert can start it again, or give the fault the parameter "
                            "`restart: false` to leave it dead")

    @classmethod
    def restarts(cls, params: Any) -> bool:
        return bool(getattr(params, "restart", True))

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        service = self.service(ctx)
        service.acquire("kill")
        service.kill(self.params.signal)


@register
class Pause(ServiceFault):
    """Freeze the target (SIGSTOP / docker pause): it keeps its connections but answers nothing. Revert resumes it."""

    type_name = "pause"
    Params = ServiceParams
    summary = "freeze a process (SIGSTOP) or container (docker pause); revert resumes it"

    def inject(self, ctx: FaultContext) -> None:
        service = self.service(ctx)
        service.acquire("pause")
        service.pause()

    def revert(self, ctx: FaultContext) -> None:
        if (service := self.reverting(ctx)) is not None:
            service.resume_if_paused()

    def verify_reverted(self, ctx: FaultContext) -> None:
        if (service := self.reverting(ctx)) is not None:
            service.verify_resumed("pause")


@register
class Throttle(ServiceFault):
    """Lower a container's CPU and/or memory limits (docker update). Revert writes back the recorded limits."""

    type_name = "throttle"
    Params = ThrottleParams
    target_kinds = frozenset({TargetKind.CONTAINER})   # not on a kafka_cluster: its Params have no `broker`
    summary = "lower a container's CPU and memory limits; revert restores them"

    def inject(self, ctx: FaultContext) -> None:
        service = self.service(ctx)
        service.acquire_any("throttle")
        service.throttle(self.params.cpus, self.params.memory_bytes)

    def revert(self, ctx: FaultContext) -> None:
        self.service(ctx).restore_limits()

    def verify_reverted(self, ctx: FaultContext) -> None:
        self.service(ctx).verify_limits_restored()
