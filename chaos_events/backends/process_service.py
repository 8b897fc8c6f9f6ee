"""The Service interface for a local process: signals by pid, a restart command, and /proc for its state.

Must not import locust, gevent, docker or prometheus_client. Processes are signalled by pid only (never their group).
`acquire` pins the pidfile and working directory as absolute paths in state, so a journal revert from another
directory finds them; a process the harness starts logs to RUN_DIR/NAME.log. A pause also pins the process's start
time, so a revert never resumes a different process that reused the pid.

Example:
    service = ProcessService(Target("broker", TargetKind.PROCESS, ProcessTarget(pidfile="b.pid")), state, save)
    service.acquire("pause"); service.pause(); ...; service.resume_if_paused()
"""
from __future__ import annotations

import os
import signal as signals
from pathlib import Path

from chaos_events.backends import process as processes
from chaos_events.backends.services import SETTLE_S, Service, ServiceStatus
from chaos_events.errors import ChaosError, InjectionError, RevertError

_NOT_VIA_KILL = {"SIGSTOP": "pause", "SIGTSTP": "pause", "SIGCONT": "pause", "SIGTTIN": "pause", "SIGTTOU": "pause"}
COMMON_SIGNALS = "SIGKILL, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2"


def signal_number(name: str) -> int:
    """`SIGKILL` -> 9; ValueError naming the accepted forms otherwise."""
    try:
        number = signals.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}; expected a name like {COMMON_SIGNALS}") from None
    if name in _NOT_VIA_KILL:
        raise ValueError(f"{name} is not a kill signal; use the `pause` fault to stop and resume a target")
    return int(number)


class ProcessService(Service):
    """A process target. State: pid (the one acted on), start_time, started_pid (one the harness started), paths."""

    kind_word = "process"

    def _spec(self):
        """The target's spec with its pidfile and working directory absolute (as pinned, once acquired)."""
        spec = self.target.spec
        update = {"cwd": self.state.get("cwd") or os.path.abspath(spec.cwd or os.getcwd())}
        if spec.pidfile:
            update["pidfile"] = self.state.get("pidfile") or os.path.abspath(spec.pidfile)
        return spec.model_copy(update=update)

    def _pin_paths(self) -> None:
        spec = self._spec()
        self.state["cwd"] = spec.cwd
        if spec.pidfile:
            self.state["pidfile"] = spec.pidfile

    def _running_pid(self) -> int | None:
        return processes.running_pid(self._spec(), self.name, known=(self.state.get("started_pid"),))

    def _same_process(self) -> int | None:
        """The acquired pid, when it is still the process we acquired (not a reused pid)."""
        pid = self.state.get("pid")
        if not pid or not processes.is_alive(pid):
            return None
        return pid if processes.start_time(pid) == self.state.get("start_time") else None

    # -- inject side -------------------------------------------------------------------------------
    def acquire(self, action: str) -> None:
        self._pin_paths()
        pid = processes.resolve_pid(self._spec(), self.name)
        if not processes.is_alive(pid):
            raise InjectionError(f"{action}: process target {self.name!r} is not running (pid {pid} has exited)")
        self._pin(pid=pid, start_time=processes.start_time(pid))

    def acquire_stopped(self, action: str) -> None:
        self._pin_paths()
        running = processes.running_pid(self._spec(), self.name)
        if running is not None:
            raise InjectionError(f"{action}: process target {self.name!r} is already running (pid {running}); "
                                 f"{action} applies to a stopped target")
        pidfile = self._spec().pidfile
        self._pin(starting=True, pidfile_before=processes.pidfile_pid(Path(pidfile)) if pidfile else None)

    def stop(self, timeout_s: float) -> None:
        processes.stop(self.state["pid"], self.name, timeout_s)

    def start(self, error: type[ChaosError] = InjectionError) -> None:
        spec = self._spec()
        argv = spec.start_argv()
        if not argv:
            raise error(f"process target {self.name!r} has no `restart` or `command` to start it")
        log_path = Path(self.run_dir) / f"{self.name}.log"
        pid = processes.start(argv, self.name, cwd=spec.cwd, pidfile=spec.pidfile, log_path=log_path, error=error)
        self.state["started_pid"] = pid
        self.save()
        self.log(f"{self.name}: started {' '.join(argv)} (pid {pid})")

    def restart(self, timeout_s: float) -> None:
        self.stop(timeout_s)
        self.start()

    def kill(self, signal_name: str) -> None:
        number = signal_number(signal_name)
        pid = self.state["pid"]
        processes.send_signal(pid, number, self.name)
        if number == signals.SIGKILL:  # certain death: let the revert see it gone rather than dying
            processes.wait_until(lambda: not processes.is_alive(pid), 5.0)

    def pause(self) -> None:
        pid = self.state["pid"]
        processes.pause(pid, self.name)
        processes.wait_until(lambda: processes.is_stopped(pid) or not processes.is_alive(pid), 2.0, 0.01)

    # -- revert side -------------------------------------------------------------------------------
    def status(self, error: type[ChaosError] = RevertError) -> ServiceStatus:
        pid = self._running_pid()
        if pid is None:
            return ServiceStatus.STOPPED
        return ServiceStatus.PAUSED if processes.is_stopped(pid) else ServiceStatus.RUNNING

    def resume_if_paused(self, error: type[ChaosError] = RevertError) -> None:
        pid = self._same_process()
        if pid is not None:
            processes.resume(pid, self.name, error)

    def ensure_running(self) -> None:
        if self.state.get("pid") and self._running_pid() is None:
            self.start(RevertError)

    def verify_running(self, action: str) -> None:
        if not self.state.get("pid"):
            return
        if not processes.wait_until(lambda: self._running_pid() is not None, SETTLE_S, 0.1):
            raise RevertError(f"{action} {self.name}: the process is not running after the revert")
        pid = self._running_pid()
        if pid is not None and processes.is_stopped(pid):
            raise RevertError(f"{action} {self.name}: process {pid} is alive but stopped (state T)")

    def verify_resumed(self, action: str) -> None:
        if not self.state.get("pid"):
            return
        pid = self._same_process()
        if pid is None:
            raise RevertError(f"{action} {self.name}: process {self.state['pid']} exited while paused")
        if not processes.wait_until(lambda: not processes.is_stopped(pid), 2.0, 0.01):
            raise RevertError(f"{action} {self.name}: process {pid} is still stopped (state T) after SIGCONT")

    def _started_pids(self) -> list[int]:
        """Pids this fault started: the one we ran, plus a different one the command wrote to the pidfile."""
        pids = [self.state["started_pid"]] if self.state.get("started_pid") else []
        pidfile = self._spec().pidfile
        if pidfile:
            now = processes.pidfile_pid(Path(pidfile))
            if now and now != self.state.get("pidfile_before") and now not in pids:
                pids.append(now)
        return pids

    def stop_what_was_started(self, timeout_s: float) -> None:
        if not self.state.get("starting"):
            return
        for pid in self._started_pids():
            processes.stop(pid, self.name, timeout_s, RevertError)

    def verify_stopped(self, action: str) -> None:
        if not self.state.get("starting"):
            return
        alive = [pid for pid in self._started_pids() if processes.is_alive(pid)]
        if alive:
            raise RevertError(f"{action} {self.name}: started process still running (pid {', '.join(map(str, alive))})")
