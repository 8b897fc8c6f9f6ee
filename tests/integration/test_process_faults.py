"""Service faults against real local processes: every effect and every recovery is read back from /proc."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from chaos_events.backends import process as processes
from chaos_events.errors import InjectionError, RevertError
from chaos_events.faults.base import FaultContext, build_params, fault_type
from chaos_events.scenario.model import Target, TargetKind
from chaos_events.scenario.targets import ProcessTarget

SLEEP = ["sleep", "986"]   # uncommon argv: cleanup ends only processes showing exactly this


class Sleepers:
    """Starts sleep processes with pidfiles; at the end ends every pid that any of its pidfiles ever named."""

    def __init__(self, base: Path):
        self.base = base
        self.seen: set[int] = set()
        self.pidfiles: list[Path] = []
        self.procs: list[subprocess.Popen] = []

    def target(self, running: bool = True, restart: list[str] | None = SLEEP, name: str = "svc") -> Target:
        pidfile = self.base / f"{name}-{len(self.pidfiles)}.pid"
        self.pidfiles.append(pidfile)
        if running:
            proc = subprocess.Popen(SLEEP, start_new_session=True)
            self.procs.append(proc)
            pidfile.write_text(f"{proc.pid}\n")
        spec = {"pidfile": str(pidfile)}
        if restart:
            spec["restart"] = list(restart)
        return Target(name, TargetKind.PROCESS, spec)

    def pid(self, target: Target) -> int:
        pid = int(Path(target.spec.pidfile).read_text())
        self.seen.add(pid)
        return pid

    def close(self) -> None:
        for pidfile in self.pidfiles:
            try:
                self.seen.add(int(pidfile.read_text()))
            except (OSError, ValueError):
                pass
        ours = {proc.pid for proc in self.procs}
        for pid in self.seen | ours:
            # Right after exec, /proc/PID/cmdline reads empty for a moment: wait for it before comparing.
            processes.wait_until(lambda: processes.cmdline(pid) != [] or not processes.is_alive(pid), 1.0)
            if pid in ours or processes.cmdline(pid) == SLEEP:
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
        for proc in self.procs:
            proc.wait(timeout=10)


@pytest.fixture
def sleepers(tmp_path):
    made = Sleepers(tmp_path)
    try:
        yield made
    finally:
        made.close()


def make(type_name: str, target: Target, **raw):
    cls = fault_type(type_name)
    params, problems = build_params(cls, raw)
    assert problems == []
    return cls(params, target)


def ctx(tmp_path: Path) -> FaultContext:
    return FaultContext(run_dir=str(tmp_path), log=lambda line: None)


def test_pause_stops_the_process_and_revert_resumes_it(sleepers, tmp_path):
    target = sleepers.target()
    pid = sleepers.pid(target)
    fault = make("pause", target)
    fault.inject(ctx(tmp_path))
    assert processes.proc_state(pid) == "T"
    fault.revert(ctx(tmp_path))
    assert processes.proc_state(pid) in ("S", "R")
    fault.verify_reverted(ctx(tmp_path))
    fault.revert(ctx(tmp_path))          # idempotent
    assert processes.is_alive(pid) and not processes.is_stopped(pid)


def test_pause_verification_fails_when_the_process_died_while_paused(sleepers, tmp_path):
    target = sleepers.target()
    pid = sleepers.pid(target)
    fault = make("pause", target)
    fault.inject(ctx(tmp_path))
    os.kill(pid, signal.SIGKILL)
    assert processes.wait_until(lambda: not processes.is_alive(pid), 5)
    fault.revert(ctx(tmp_path))          # nothing left to resume: no error here
    with pytest.raises(RevertError) as err:
        fault.verify_reverted(ctx(tmp_path))
    assert str(err.value) == f"pause svc: process {pid} exited while paused"


def test_stop_ends_the_process_and_revert_starts_it_again(sleepers, tmp_path):
    target = sleepers.target()
    pid = sleepers.pid(target)
    fault = make("stop", target, timeout_s=2)
    fault.inject(ctx(tmp_path))
    assert not processes.is_alive(pid)
    fault.revert(ctx(tmp_path))
    new_pid = sleepers.pid(target)
    assert new_pid != pid and processes.wait_until(lambda: processes.cmdline(new_pid) == SLEEP, 2)
    assert fault.state["started_pid"] == new_pid
    fault.verify_reverted(ctx(tmp_path))
    fault.revert(ctx(tmp_path))          # running already: starts nothing more
    assert sleepers.pid(target) == new_pid


def test_kill_with_restart_and_with_restart_false(sleepers, tmp_path):
    target = sleepers.target()
    pid = sleepers.pid(target)
    fault = make("kill", target)          # SIGKILL, restart
    fault.inject(ctx(tmp_path))
    assert not processes.is_alive(pid)
    fault.revert(ctx(tmp_path))
    fault.verify_reverted(ctx(tmp_path))
    assert processes.is_alive(sleepers.pid(target)) and sleepers.pid(target) != pid

    dead = sleepers.target(restart=None)
    dead_pid = sleepers.pid(dead)
    leave = make("kill", dead, signal="SIGTERM", restart=False)
    assert type(leave).check_plan(leave.params, dead) == []      # no restart command needed to leave it dead
    leave.inject(ctx(tmp_path))
    assert processes.wait_until(lambda: not processes.is_alive(dead_pid), 5)
    leave.revert(ctx(tmp_path))
    leave.verify_reverted(ctx(tmp_path))
    assert not processes.is_alive(dead_pid) and sleepers.pid(dead) == dead_pid


def test_restart_gives_a_new_running_process(sleepers, tmp_path):
    target = sleepers.target()
    pid = sleepers.pid(target)
    fault = make("restart", target, timeout_s=2)
    fault.inject(ctx(tmp_path))
    new_pid = sleepers.pid(target)
    assert new_pid != pid and not processes.is_alive(pid) and processes.is_alive(new_pid)
    fault.revert(ctx(tmp_path))
    fault.verify_reverted(ctx(tmp_path))
    assert sleepers.pid(target) == new_pid


def test_start_runs_a_stopped_target_and_revert_stops_it(sleepers, tmp_path):
    target = sleepers.target(running=False)
    fault = make("start", target)
    fault.inject(ctx(tmp_path))
    pid = sleepers.pid(target)
    assert processes.wait_until(lambda: processes.cmdline(pid) == SLEEP, 2)   # exec may still be under way
    fault.revert(ctx(tmp_path))
    assert not processes.is_alive(pid)
    fault.verify_reverted(ctx(tmp_path))

    running = sleepers.target()
    with pytest.raises(InjectionError) as err:
        make("start", running).inject(ctx(tmp_path))
    assert str(err.value) == f"start: process target 'svc' is already running (pid {sleepers.pid(running)}); start applies to a stopped target"


def test_a_daemonizing_restart_command_is_followed_through_its_pidfile(sleepers, tmp_path):
    running = sleepers.target()
    pidfile = running.spec.pidfile
    launcher = ["sh", "-c", f"sleep 986 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}"]
    target = Target("svc", TargetKind.PROCESS, {"pidfile": pidfile, "restart": launcher})
    old = sleepers.pid(target)
    fault = make("stop", target, timeout_s=2)
    fault.inject(ctx(tmp_path))
    fault.revert(ctx(tmp_path))
    fault.verify_reverted(ctx(tmp_path))
    # the shell truncates and then writes the pidfile: read it quietly until it names the detached sleep
    assert processes.wait_until(lambda: processes.cmdline(processes.pidfile_pid(Path(pidfile)) or 0) == SLEEP, 5)
    assert sleepers.pid(target) != old and processes.is_alive(sleepers.pid(target))


def test_refusals_and_bad_input_have_exact_messages(sleepers, tmp_path):
    no_restart = sleepers.target(restart=None, name="broker")
    for type_name, reason in (("stop", "stop needs one so that its revert can start it again"),
                              ("kill", "kill needs one so that its revert can start it again, or give the fault the parameter `restart: false` to leave it dead"),
                              ("restart", "restart needs one to start it again")):
        cls = fault_type(type_name)
        params, _ = build_params(cls, {})
        assert cls.check_plan(params, no_restart) == [f"target 'broker' has no `restart` or `command` to start the process; {reason}"]
        with pytest.raises(InjectionError):
            cls(params, no_restart).inject(ctx(tmp_path))
    assert processes.is_alive(sleepers.pid(no_restart))      # the refused stop touched nothing

    _, problems = build_params(fault_type("kill"), {"signal": "SIGFOO"})
    assert problems == ["parameter 'signal': unknown signal 'SIGFOO'; expected a name like SIGKILL, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2"]
    _, problems = build_params(fault_type("kill"), {"signal": "SIGSTOP"})
    assert problems == ["parameter 'signal': SIGSTOP is not a kill signal; use the `pause` fault to stop and resume a target"]
    _, problems = build_params(fault_type("pause"), {"sgnal": "x"})
    assert problems == ["unknown parameter 'sgnal'; expected one of: broker"]

    gone = Target("broker", TargetKind.PROCESS, {"pidfile": str(tmp_path / "missing.pid")})
    with pytest.raises(InjectionError) as err:
        make("pause", gone).inject(ctx(tmp_path))
    assert str(err.value) == f"process target 'broker': pidfile {tmp_path / 'missing.pid'} does not exist"


def test_resolve_by_command_and_by_pid(sleepers):
    target = sleepers.target()
    pid = sleepers.pid(target)
    argv = ["sleep", "986.5"]
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        assert processes.resolve_pid(ProcessTarget(command=argv), "x") == proc.pid
        assert processes.resolve_pid(ProcessTarget(pid=pid), "x") == pid
        with pytest.raises(InjectionError) as err:
            processes.resolve_pid(ProcessTarget(command=["sleep", "986.25"]), "x")
        assert str(err.value) == "process target 'x': no running process has the command 'sleep 986.25'"
    finally:
        proc.kill()
        proc.wait()


def test_stop_of_a_paused_process_ends_it_with_sigterm(sleepers):
    sleepers.target()
    proc = sleepers.procs[-1]
    os.kill(proc.pid, signal.SIGSTOP)
    assert processes.wait_until(lambda: processes.is_stopped(proc.pid), 2)
    processes.stop(proc.pid, "svc", timeout_s=5)
    assert not processes.is_alive(proc.pid)
    assert proc.wait(timeout=5) == -signal.SIGTERM    # SIGTERM took effect (SIGCONT let it run); no SIGKILL needed
