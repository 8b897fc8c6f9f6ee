"""SIGKILL of the harness with a fault active: the watchdog (or `chaos-events revert`) puts the target right.

The "owner" is a real child Python process that runs a ChaosEngine with a Journal, pauses a real sleep process
(SIGSTOP), prints what it did and then waits to be killed. Everything started here is ended by pid in finally.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chaos_events.backends import process as processes
from chaos_events.run.journal import read_journal
from tests.helpers import ROOT

OWNER = textwrap.dedent("""
    import json, sys, time
    from chaos_events.run.engine import ChaosEngine
    from chaos_events.faults.base import FaultContext
    from chaos_events.run.journal import Journal
    from chaos_events.scenario.model import FaultSpec, Plan, Target, TargetKind
    from chaos_events.record import Record
    from chaos_events.run.watchdog import spawn_watchdog

    pidfile, journal_path, mode = sys.argv[1:4]
    plan = Plan(name="w", source="w.yml", targets={"svc": Target("svc", TargetKind.PROCESS, {"pidfile": pidfile})},
                probes={}, faults=(FaultSpec(0, "pause", "svc", at_s=0.0, for_s=600.0),), slos=())
    journal = Journal(journal_path, run_id="owner-run")
    watchdog = spawn_watchdog(os.getpid(), journal_path, interval_s=0.1) if mode != "no-watchdog" else None
    start = time.monotonic()
    engine = ChaosEngine(plan, Record("owner-run", "w", time.time()), journal, clock=lambda: time.monotonic() - start,
                         wall=time.time, context_factory=lambda oid: FaultContext(run_dir="."),
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    engine.tick()
    print(json.dumps({"injected": engine.injected_count, "watchdog": watchdog.pid if watchdog else None}), flush=True)
    if mode == "clean":
        engine.revert_all("end of run")
        journal.close()
        print("closed", flush=True)
    time.sleep(600)
""").replace("import json, sys, time", "import json, os, sys, time")

SLEEP = ["sleep", "985"]


class Scene:
    """A paused-able sleep process, an owner process, and the watchdog it reports; all ended by pid at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.target = subprocess.Popen(SLEEP, start_new_session=True)
        self.pidfile = tmp_path / "svc.pid"
        self.pidfile.write_text(f"{self.target.pid}\n")
        self.journal = tmp_path / "journal.json"
        self.owner: subprocess.Popen | None = None
        self.watchdog_pid: int | None = None

    def start_owner(self, mode: str) -> dict:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.owner = subprocess.Popen([sys.executable, "-c", OWNER, str(self.pidfile), str(self.journal), mode], cwd=self.tmp,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        line = self.owner.stdout.readline()
        if not line:
            raise AssertionError(f"the owner died: {self.owner.stderr.read()[-3000:]}")
        report = json.loads(line)
        self.watchdog_pid = report["watchdog"]
        return report

    def kill_owner(self) -> None:
        os.kill(self.owner.pid, signal.SIGKILL)
        self.owner.wait(timeout=10)     # reaped, so the watchdog sees it gone rather than a zombie

    def watchdog_exited(self, timeout_s: float = 10) -> bool:
        return self.watchdog_pid is None or processes.wait_until(lambda: not processes.is_alive(self.watchdog_pid), timeout_s)

    def close(self) -> None:
        if self.owner is not None and self.owner.poll() is None:
            os.killpg(self.owner.pid, signal.SIGKILL)
            self.owner.wait(timeout=10)
        if self.watchdog_pid and processes.is_alive(self.watchdog_pid):
            os.kill(self.watchdog_pid, signal.SIGKILL)
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(self.target.pid, sig)
            except ProcessLookupError:
                pass
        self.target.wait(timeout=10)


@pytest.fixture
def scene(tmp_path):
    made = Scene(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_watchdog_reverts_after_the_owner_is_killed(scene):
    report = scene.start_owner("watchdog")
    assert report["injected"] == 1 and report["watchdog"]
    assert processes.is_stopped(scene.target.pid)
    entries = read_journal(scene.journal)["entries"]
    assert list(entries) == ["f0#1"] and entries["f0#1"]["state"]["pid"] == scene.target.pid
    assert processes.is_alive(report["watchdog"])

    scene.kill_owner()
    assert processes.wait_until(lambda: not processes.is_stopped(scene.target.pid), 10), "the watchdog did not resume the process"
    assert processes.is_alive(scene.target.pid)
    assert scene.watchdog_exited()
    assert read_journal(scene.journal)["entries"] == {}
    log = Path(f"{scene.journal}.watchdog.log").read_text()
    assert "fault(s) still active; reverting" in log and "reverted 1 fault(s), 0 failed" in log


def test_cli_revert_after_the_owner_is_killed(scene):
    scene.start_owner("no-watchdog")
    assert processes.is_stopped(scene.target.pid)
    scene.kill_owner()
    assert processes.is_stopped(scene.target.pid)            # nobody reverted it yet
    cli = subprocess.run([sys.executable, "-m", "chaos_events.cli", "revert", "--journal", str(scene.journal)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert processes.wait_until(lambda: not processes.is_stopped(scene.target.pid), 5)
    assert processes.is_alive(scene.target.pid)
    assert read_journal(scene.journal)["entries"] == {}


def test_watchdog_exits_when_the_run_ends_cleanly(scene):
    report = scene.start_owner("clean")
    assert scene.owner.stdout.readline().strip() == "closed"
    assert not processes.is_stopped(scene.target.pid)
    assert report["watchdog"] and scene.watchdog_exited()
    assert scene.owner.poll() is None                          # the owner still runs; the watchdog left anyway
    data = read_journal(scene.journal)
    assert data["closed"] is True and data["entries"] == {}
