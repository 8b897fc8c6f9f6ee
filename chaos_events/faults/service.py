"""Service faults: stop, start, restart, kill, pause and throttle a local process or a Docker container.

Must not import locust, gevent, docker or prometheus_client. Processes are reached through
`chaos_events.backends.process`, containers through `chaos_events.backends.docker` (which imports docker lazily).

Revert semantics (each revert is idempotent and works from `self.state`, saved before every side effect):
- stop     -> start it again. A process needs `restart` (or `command`) in its target spec; `check` refuses otherwise.
- start    -> (a target that was stopped) stop it again. Starting a target that already runs is an InjectionError.
- restart  -> nothing to undo; the revert makes sure the target runs (it starts it when the restart broke halfway).
- kill     -> start it again when it died, as for stop. `signal` (default SIGKILL) is a name like SIGTERM.
              `restart: false` means "leave it dead": the scenario tests non-recovery, so revert and its
              verification do nothing, and a process target needs no restart command.
- pause    -> resume (SIGCONT / docker unpause). Process: SIGSTOP; the verification reads state 'T' in /proc.
- throttle -> (containers only) put back the CPU and memory limits recorded before the change.
`verify_reverted`: the container runs (not paused) / the process is alive and not stopped.
Processes are signalled by pid only (never their group). Inject pins the pidfile and working directory as absolute
paths in state, so a journal revert from another directory finds them; a restarted process logs to RUN_DIR/NAME.log.
`stop`, `start` and `restart` take `timeout_s` (grace between SIGTERM and SIGKILL; for `start`, when its revert stops it).

Example (scenario):
    targets: {broker: {process: {pidfile: .run/broker.pid, restart: [python, -m, chaos_events.demo, start-part, broker]}},
              kafka: {container: {name: demo-kafka}}}
    faults:
      - {at: 10s, for: 15s, fault: pause, target: broker}
      - {at: 40s, for: 20s, fault: throttle, target: kafka, params: {cpus: 0.2, memory_bytes: 64MiB}}
      - {at: 70s, for: 10s, fault: kill, target: broker, params: {signal: SIGKILL}}
"""
from __future__ import annotations

import os
import signal as signals
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos_events.backends import docker as containers
from chaos_events.backends import process as processes
from chaos_events.errors import InjectionError, RevertError
from chaos_events.scenario.plan import Target, TargetKind
from chaos_events.faults.base import Fault, FaultContext, register

# How long a verification waits for a target to come back (a started process may take a moment to write its
# pidfile; a killed one a moment to die).
SETTLE_S = 10.0
_NOT_VIA_KILL = {"SIGSTOP": "pause", "SIGTSTP": "pause", "SIGCONT": "pause", "SIGTTIN": "pause", "SIGTTOU": "pause"}
_COMMON_SIGNALS = "SIGKILL, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2"


def signal_number(name: str) -> int:
    """`SIGKILL` -> 9; ValueError naming the accepted forms otherwise."""
    try:
        number = signals.Signals[name]
    except KeyError:
        raise ValueError(f"parameter 'signal': unknown signal {name!r}; expected a name like {_COMMON_SIGNALS}") from None
    if name in _NOT_VIA_KILL:
        raise ValueError(f"parameter 'signal': {name} is not a kill signal; use the `pause` fault to stop and resume a target")
    return int(number)


# -- parameters ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoParams:
    pass


@dataclass(frozen=True)
class StopParams:
    timeout_s: float = 10.0     # grace between SIGTERM (docker stop) and SIGKILL; for start, when its revert stops

    def __post_init__(self) -> None:
        if self.timeout_s < 0:
            raise ValueError(f"parameter 'timeout_s': expected 0 or more; got {self.timeout_s}")


@dataclass(frozen=True)
class KillParams:
    signal: str = "SIGKILL"
    restart: bool = True        # false: leave it dead (the scenario tests non-recovery)

    def __post_init__(self) -> None:
        signal_number(self.signal)


@dataclass(frozen=True)
class ThrottleParams:
    cpus: float | None = None           # CPUs the container may use, e.g. 0.25
    memory_bytes: int | None = None     # memory limit, e.g. 64MiB (at least 6 MiB: Docker's minimum)

    def __post_init__(self) -> None:
        if self.cpus is None and self.memory_bytes is None:
            raise ValueError("throttle needs at least one of: cpus, memory_bytes")
        if self.cpus is not None and not self.cpus >= 0.01:
            raise ValueError(f"parameter 'cpus': expected 0.01 or more; got {self.cpus}")
        if self.memory_bytes is not None and self.memory_bytes < 6 * 2**20:
            raise ValueError(f"parameter 'memory_bytes': expected at least 6MiB (Docker's minimum); got {self.memory_bytes}")


# -- shared behaviour ---------------------------------------------------------------------------------------
class _ServiceFault(Fault):
    """Shared plumbing: which backend, the container kept by id, and "make sure it runs" for reverts."""

    target_kinds = frozenset({TargetKind.PROCESS, TargetKind.CONTAINER})
    # Whether this fault's revert starts the process again (so a process target needs a start command).
    needs_start_command = False
    start_command_reason = ""

    @classmethod
    def check(cls, params: Any, target: Target) -> list[str]:
        if target.kind is TargetKind.PROCESS and cls._restarts(params) and not processes.start_argv(target.spec):
            return [f"target {target.name!r} has no `restart` or `command` to start the process; {cls.start_command_reason}"]
        return []

    @classmethod
    def _restarts(cls, params: Any) -> bool:
        return cls.needs_start_command

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def is_container(self) -> bool:
        return self.target.kind is TargetKind.CONTAINER

    def _refuse_bad_target(self) -> None:
        if self.target.kind not in self.target_kinds:
            kinds = ", ".join(sorted(k.value for k in self.target_kinds))
            raise InjectionError(f"{self.type_name}: target {self.name!r} is a {self.target.kind.value}; expected one of: {kinds}")
        problems = self.check(self.params, self.target)
        if problems:
            raise InjectionError(f"{self.type_name}: {problems[0]}")

    # containers: resolved (and the opt-in checked) once by inject; reverts use the id saved in state, which is
    # set only once the fault is about to act, so a refused inject leaves nothing for the revert to "undo"
    def _resolve_container(self, ctx: FaultContext) -> Any:
        return containers.resolve_container(self.target.spec, self.name, ctx.extra_allowed)

    def _remember(self, container: Any, ctx: FaultContext) -> None:
        self.state["container_id"] = container.id
        ctx.save_state()

    def _container_for_revert(self) -> Any | None:
        """The container this fault touched; None when inject never got that far. RevertError when it is gone."""
        container_id = self.state.get("container_id")
        if not container_id:
            return None
        container = containers.by_id(container_id, self.name, RevertError)
        if container is None:
            raise RevertError(f"{self.type_name} {self.name}: container {container_id[:12]} no longer exists")
        return container

    # processes
    def _spec(self) -> dict[str, Any]:
        """The process spec with its pidfile and working directory made absolute (kept in state), so that a
        journal revert started from another directory finds the same files."""
        spec = dict(self.target.spec)
        if spec.get("pidfile"):
            spec["pidfile"] = self.state.get("pidfile") or os.path.abspath(spec["pidfile"])
        spec["cwd"] = self.state.get("cwd") or os.path.abspath(spec.get("cwd") or os.getcwd())
        return spec

    def _pin_paths(self) -> None:
        spec = self._spec()
        self.state["cwd"] = spec["cwd"]
        if spec.get("pidfile"):
            self.state["pidfile"] = spec["pidfile"]

    def _live_pid_for_inject(self) -> int:
        self._pin_paths()
        pid = processes.resolve_pid(self._spec(), self.name)
        if not processes.is_alive(pid):
            raise InjectionError(f"{self.type_name}: process target {self.name!r} is not running (pid {pid} has exited)")
        return pid

    def _running_pid(self) -> int | None:
        return processes.running_pid(self._spec(), self.name, known=(self.state.get("started_pid"),))

    def _start_process(self, ctx: FaultContext, error: type) -> int:
        spec = self._spec()
        argv = processes.start_argv(spec)
        if not argv:
            raise error(f"{self.type_name}: process target {self.name!r} has no `restart` or `command` to start it")
        pidfile = spec.get("pidfile")
        log_path = Path(ctx.run_dir) / f"{self.name}.log"
        pid = processes.start(argv, self.name, cwd=spec.get("cwd"), pidfile=pidfile, log_path=log_path, error=error)
        self.state["started_pid"] = pid
        ctx.save_state()
        ctx.log(f"{self.type_name} {self.name}: started {' '.join(argv)} (pid {pid})")
        return pid

    def _ensure_running(self, ctx: FaultContext) -> None:
        """The shared revert of stop, restart and kill: start the target again when it is not running."""
        if self.is_container:
            container = self._container_for_revert()
            if container is None:
                return
            current = containers.status(container, self.name, RevertError)
            if current == "paused":
                containers.unpause(container, self.name, RevertError)
            elif current not in ("running", "restarting"):
                containers.start(container, self.name, RevertError)
            return
        if "pid" not in self.state:
            return
        if self._running_pid() is None:
            self._start_process(ctx, RevertError)

    def _verify_running(self) -> None:
        if self.is_container:
            container = self._container_for_revert()
            if container is None:
                return
            ok = processes.wait_until(lambda: containers.status(container, self.name, RevertError) == "running", SETTLE_S, 0.2)
            if not ok:
                raise RevertError(f"{self.type_name} {self.name}: container {container.name!r} is {container.status}, not running")
            return
        if "pid" not in self.state:
            return
        if not processes.wait_until(lambda: self._running_pid() is not None, SETTLE_S, 0.1):
            raise RevertError(f"{self.type_name} {self.name}: the process is not running after the revert")
        pid = self._running_pid()
        if pid is not None and processes.is_stopped(pid):
            raise RevertError(f"{self.type_name} {self.name}: process {pid} is alive but stopped (state T)")


# -- the faults ----------------------------------------------------------------------------------------------
@register
class Stop(_ServiceFault):
    """Stop the target (SIGTERM, then SIGKILL after `timeout_s` / docker stop). Revert starts it again.

    Example: Stop(StopParams(timeout_s=5), Target("broker", TargetKind.PROCESS, {"pidfile": "b.pid", "restart": [...]}))
    """

    type_name = "stop"
    Params = StopParams
    summary = "stop a process or container; revert starts it again"
    needs_start_command = True
    start_command_reason = "stop needs one so that its revert can start it again"

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        if self.is_container:
            container = self._resolve_container(ctx)
            if not containers.is_running(container, self.name):
                raise InjectionError(f"stop: container {container.name!r} is {container.status}, not running")
            self._remember(container, ctx)
            containers.stop(container, self.name, self.params.timeout_s)
            return
        pid = self._live_pid_for_inject()
        self.state["pid"] = pid
        ctx.save_state()
        processes.stop(pid, self.name, self.params.timeout_s)

    def revert(self, ctx: FaultContext) -> None:
        self._ensure_running(ctx)

    def verify_reverted(self, ctx: FaultContext) -> None:
        self._verify_running()


@register
class Start(_ServiceFault):
    """Start a target that is stopped (a standby, a consumer that should not run yet). Revert stops it again.

    Example: Start(StopParams(), Target("consumer2", TargetKind.PROCESS, {"pidfile": "c2.pid", "command": [...]}))
    """

    type_name = "start"
    Params = StopParams         # timeout_s: the grace the revert gives it when stopping it again
    summary = "start a stopped process or container; revert stops it again"
    needs_start_command = True
    start_command_reason = "start needs one to start it"

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        if self.is_container:
            container = self._resolve_container(ctx)
            if containers.status(container, self.name) in ("running", "paused", "restarting"):
                raise InjectionError(f"start: container {container.name!r} is already {container.status}; start applies to a stopped target")
            self.state["starting"] = True
            self._remember(container, ctx)
            containers.start(container, self.name)
            return
        self._pin_paths()
        running = processes.running_pid(self._spec(), self.name)
        if running is not None:
            raise InjectionError(f"start: process target {self.name!r} is already running (pid {running}); start applies to a stopped target")
        pidfile = self._spec().get("pidfile")
        self.state["starting"] = True
        self.state["pidfile_before"] = processes.pidfile_pid(Path(pidfile)) if pidfile else None
        ctx.save_state()
        self._start_process(ctx, InjectionError)

    def _started_pids(self) -> list[int]:
        """Pids this fault started: the one we ran, plus a different one the command wrote to the pidfile."""
        pids = [self.state["started_pid"]] if self.state.get("started_pid") else []
        pidfile = self._spec().get("pidfile")
        if pidfile:
            now = processes.pidfile_pid(Path(pidfile))
            if now and now != self.state.get("pidfile_before") and now not in pids:
                pids.append(now)
        return pids

    def revert(self, ctx: FaultContext) -> None:
        if not self.state.get("starting"):
            return
        if self.is_container:
            container = self._container_for_revert()
            if containers.status(container, self.name, RevertError) in ("running", "paused", "restarting"):
                containers.stop(container, self.name, self.params.timeout_s, RevertError)
            return
        for pid in self._started_pids():
            processes.stop(pid, self.name, self.params.timeout_s, RevertError)

    def verify_reverted(self, ctx: FaultContext) -> None:
        if not self.state.get("starting"):
            return
        if self.is_container:
            container = self._container_for_revert()
            if containers.status(container, self.name, RevertError) in ("running", "paused", "restarting"):
                raise RevertError(f"start {self.name}: container {container.name!r} is still {container.status}")
            return
        alive = [pid for pid in self._started_pids() if processes.is_alive(pid)]
        if alive:
            raise RevertError(f"start {self.name}: started process still running (pid {', '.join(map(str, alive))})")


@register
class Restart(_ServiceFault):
    """Stop the target and start it again at once. Nothing to undo; the revert makes sure it runs.

    Example: Restart(StopParams(), Target("kafka", TargetKind.CONTAINER, {"name": "demo-kafka"}))
    """

    type_name = "restart"
    Params = StopParams
    summary = "stop and start a process or container; revert makes sure it runs"
    needs_start_command = True
    start_command_reason = "restart needs one to start it again"

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        if self.is_container:
            container = self._resolve_container(ctx)
            self._remember(container, ctx)
            containers.restart(container, self.name, self.params.timeout_s)
            return
        pid = self._live_pid_for_inject()
        self.state["pid"] = pid
        ctx.save_state()
        processes.stop(pid, self.name, self.params.timeout_s)
        self._start_process(ctx, InjectionError)

    def revert(self, ctx: FaultContext) -> None:
        self._ensure_running(ctx)

    def verify_reverted(self, ctx: FaultContext) -> None:
        self._verify_running()


@register
class Kill(_ServiceFault):
    """Send `signal` (default SIGKILL) to the target. Revert starts it again if it died, unless `restart: false`.

    Example: Kill(KillParams(signal="SIGKILL", restart=False), Target("consumer", TargetKind.PROCESS, {"pidfile": "c.pid"}))
    """

    type_name = "kill"
    Params = KillParams
    summary = "send a signal (default SIGKILL); revert starts it again unless restart: false"
    start_command_reason = "kill needs one so that its revert can start it again, or set `restart: false` to leave it dead"

    @classmethod
    def _restarts(cls, params: Any) -> bool:
        return bool(getattr(params, "restart", True))

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        number = signal_number(self.params.signal)
        if self.is_container:
            container = self._resolve_container(ctx)
            if not containers.is_running(container, self.name):
                raise InjectionError(f"kill: container {container.name!r} is {container.status}, not running")
            self._remember(container, ctx)
            containers.kill(container, self.params.signal, self.name)
            return
        pid = self._live_pid_for_inject()
        self.state["pid"] = pid
        ctx.save_state()
        processes.send_signal(pid, number, self.name)
        if number == signals.SIGKILL:  # certain death: let the revert see it gone rather than dying
            processes.wait_until(lambda: not processes.is_alive(pid), 5.0)

    def revert(self, ctx: FaultContext) -> None:
        if self.params.restart:
            self._ensure_running(ctx)

    def verify_reverted(self, ctx: FaultContext) -> None:
        if self.params.restart:
            self._verify_running()


@register
class Pause(_ServiceFault):
    """Freeze the target (SIGSTOP / docker pause): it keeps its connections but answers nothing. Revert resumes it.

    Example: Pause(NoParams(), Target("broker", TargetKind.PROCESS, {"pidfile": ".run/broker.pid"}))
    """

    type_name = "pause"
    Params = NoParams
    summary = "freeze a process (SIGSTOP) or container (docker pause); revert resumes it"

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        if self.is_container:
            container = self._resolve_container(ctx)
            if not containers.is_running(container, self.name):
                raise InjectionError(f"pause: container {container.name!r} is {container.status}, not running")
            self._remember(container, ctx)
            containers.pause(container, self.name)
            return
        pid = self._live_pid_for_inject()
        self.state["pid"] = pid
        self.state["start_time"] = processes.start_time(pid)
        ctx.save_state()
        processes.pause(pid, self.name)
        processes.wait_until(lambda: processes.is_stopped(pid) or not processes.is_alive(pid), 2.0, 0.01)

    def _same_process(self) -> int | None:
        """The paused pid, when it is still the process we paused (not a reused pid)."""
        pid = self.state.get("pid")
        if not pid or not processes.is_alive(pid):
            return None
        return pid if processes.start_time(pid) == self.state.get("start_time") else None

    def revert(self, ctx: FaultContext) -> None:
        if self.is_container:
            container = self._container_for_revert()
            if container is not None and containers.status(container, self.name, RevertError) == "paused":
                containers.unpause(container, self.name, RevertError)
            return
        pid = self._same_process()
        if pid is not None:
            processes.resume(pid, self.name, RevertError)

    def verify_reverted(self, ctx: FaultContext) -> None:
        if self.is_container:
            self._verify_running()
            return
        if "pid" not in self.state:
            return
        pid = self._same_process()
        if pid is None:
            raise RevertError(f"pause {self.name}: process {self.state['pid']} exited while paused")
        if not processes.wait_until(lambda: not processes.is_stopped(pid), 2.0, 0.01):
            raise RevertError(f"pause {self.name}: process {pid} is still stopped (state T) after SIGCONT")


@register
class Throttle(_ServiceFault):
    """Lower a container's CPU and/or memory limits (docker update). Revert writes back the recorded limits.

    Example: Throttle(ThrottleParams(cpus=0.2, memory_bytes=64 * 2**20), Target("kafka", TargetKind.CONTAINER, {"name": "k"}))
    """

    type_name = "throttle"
    Params = ThrottleParams
    target_kinds = frozenset({TargetKind.CONTAINER})
    summary = "lower a container's CPU and memory limits; revert restores them"

    def inject(self, ctx: FaultContext) -> None:
        self._refuse_bad_target()
        container = self._resolve_container(ctx)
        previous = containers.limits(container, self.name)
        body = containers.throttle_update(previous, self.params.cpus, self.params.memory_bytes)
        self.state["previous"] = previous
        self.state["applied"] = body
        self._remember(container, ctx)
        containers.update(container, body, self.name)

    def revert(self, ctx: FaultContext) -> None:
        if "applied" not in self.state:
            return
        container = self._container_for_revert()
        restore = containers.restore_update(self.state["previous"], self.state["applied"])
        containers.update(container, restore, self.name, RevertError)

    def verify_reverted(self, ctx: FaultContext) -> None:
        if "applied" not in self.state:
            return
        container = self._container_for_revert()
        differ = containers.limits_differ(self.state["previous"], containers.limits(container, self.name, RevertError), self.state["applied"])
        if differ:
            raise RevertError(f"throttle {self.name}: limits not restored: {', '.join(differ)}")
