"""A revert that always happens: real Locust runs that end mid-fault in every way a run can end.

Each test starts a `sleep` process (the victim), a stdlib HTTP server on loopback for the load, and a Locust
subprocess whose scenario pauses the victim (SIGSTOP, state 'T' in /proc/PID/stat) at 1 s for 60 s, so the run
always ends while the fault is active. Afterwards the victim must not be stopped and the revert journal must list
nothing. Everything started here (victim, HTTP server, Locust, the watchdog Locust spawned) is ended by pid in a
finally block. `Scene` is shared with test_exit_codes.py and test_bad_input.py.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from chaos_events.errors import ExitCode
from chaos_events.backends.process import proc_state, wait_until as poll
from tests.helpers import LOCUST, ROOT, LocustRun, free_port, run_locust, stop_group

PYTHON = sys.executable
REPORTS = ("chaos-report.json", "chaos-report.xml", "chaos-report.md", "chaos-report.html")

DEFAULT_LOCUSTFILE = """
import chaos_events
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/")
"""

DEFAULT_SCENARIO = """
name: lifecycle
targets:
  victim: {process: {pidfile: "@PIDFILE@"}}
faults:
  - {at: 1s, for: 60s, fault: pause, target: victim}
slos:
  - {name: few-errors, metric: error_rate, max: 0.5}
"""


class StateSampler(threading.Thread):
    """Samples the victim's state every few ms, so a test can tell whether it was ever paused."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.seen, self._done = pid, set(), threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            state = proc_state(self.pid)
            if state is not None:
                self.seen.add(state)
            time.sleep(0.005)

    def stop(self) -> set:
        self._done.set()
        self.join(timeout=5)
        return self.seen


class Scene:
    """Victim process, HTTP server, locustfile, scenario and Locust runs of one test; `close()` ends them by pid."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.site = tmp_path / "site"
        self.site.mkdir()
        (self.site / "index.html").write_text("<p>ok</p>\n")
        self.victim = self._popen(["sleep", "1000"])
        self.pidfile = tmp_path / "victim.pid"
        self.pidfile.write_text(f"{self.victim.pid}\n")
        self.journal = tmp_path / "journal.json"
        self.reports = tmp_path / "reports"
        self.locustfile = tmp_path / "lf.py"
        self.locustfile.write_text(textwrap.dedent(DEFAULT_LOCUSTFILE))
        self.scenario = tmp_path / "scenario.yml"
        self.write_scenario(DEFAULT_SCENARIO)
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.http = self._popen([PYTHON, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                 "--directory", str(self.site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not poll(self._http_ready, 20):
            raise AssertionError(f"the test HTTP server did not listen on {self.host}")
        self.env = {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    # -- setup ------------------------------------------------------------------------------------------------
    def _popen(self, argv, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def _http_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def write_scenario(self, text: str) -> Path:
        self.scenario.write_text(textwrap.dedent(text).replace("@PIDFILE@", str(self.pidfile)))
        return self.scenario

    def write_locustfile(self, text: str) -> Path:
        self.locustfile.write_text(textwrap.dedent(text))
        return self.locustfile

    def args(self, run_time: str | None = "5s", *extra: str, headless: bool = True, plan: bool = True) -> list[str]:
        argv = ["-f", str(self.locustfile), "-u", "2", "-r", "2", "--host", self.host,
                "--chaos-report-dir", str(self.reports), "--chaos-metrics-port", "0", "--chaos-journal", str(self.journal)]
        if headless:
            argv.append("--headless")
        if run_time:
            argv += ["--run-time", run_time]
        if plan:
            argv += ["--chaos-plan", str(self.scenario)]
        return argv + list(extra)

    # -- running Locust -------------------------------------------------------------------------------------
    def run(self, args: list[str], env: dict | None = None, timeout: float = 90) -> LocustRun:
        """Locust to completion, with the victim's states sampled throughout (`self.seen`)."""
        sampler = StateSampler(self.victim.pid)
        sampler.start()
        try:
            return run_locust(args, timeout=timeout, env={**self.env, **(env or {})}, cwd=self.tmp)
        finally:
            self.seen = sampler.stop()

    def start(self, args: list[str], env: dict | None = None) -> subprocess.Popen:
        """Locust in the background; its output goes to files (read with `output(proc)`)."""
        self.out = open(self.tmp / "locust.out", "w")
        self.err = open(self.tmp / "locust.err", "w")
        return self._popen([LOCUST, *args], cwd=self.tmp, env={**os.environ, **self.env, **(env or {})},
                           stdout=self.out, stderr=self.err, text=True)

    def output(self) -> str:
        return (self.tmp / "locust.out").read_text() + (self.tmp / "locust.err").read_text()

    def wait_exit(self, proc: subprocess.Popen, timeout: float = 60) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            pytest.fail(f"locust did not exit within {timeout}s\n{self.output()[-4000:]}")

    # -- observing ------------------------------------------------------------------------------------------
    def victim_state(self) -> str | None:
        return proc_state(self.victim.pid)

    def victim_paused(self) -> bool:
        return self.victim_state() == "T"

    def wait_paused(self, timeout: float = 30, proc: subprocess.Popen | None = None) -> None:
        def paused_or_dead() -> bool:
            return self.victim_paused() or (proc is not None and proc.poll() is not None)

        assert poll(paused_or_dead, timeout), f"the fault never paused the victim\n{self.output()[-4000:] if proc else ''}"
        assert self.victim_paused(), f"locust exited before the fault paused the victim\n{self.output()[-4000:]}"

    def journal_data(self) -> dict | None:
        try:
            return json.loads(self.journal.read_text())
        except FileNotFoundError:
            return None

    def journal_entries(self) -> dict:
        data = self.journal_data()
        return {} if data is None else data["entries"]

    def report(self) -> dict:
        return json.loads((self.reports / "chaos-report.json").read_text())

    def assert_reverted(self, output: str = "") -> None:
        assert self.victim_state() not in ("T", "t", None), f"victim state {self.victim_state()!r}\n{output[-4000:]}"
        assert self.journal_entries() == {}, f"journal still lists {self.journal_entries()}\n{output[-4000:]}"

    def assert_reports(self) -> None:
        missing = [name for name in REPORTS if not (self.reports / name).is_file()]
        assert not missing, f"reports not written: {missing}"

    # -- cleanup --------------------------------------------------------------------------------------------
    def watchdog_pids(self) -> list[int]:
        log = Path(f"{self.journal}.watchdog.log")
        text = log.read_text() if log.exists() else ""
        return [int(pid) for pid in re.findall(r"watchdog (\d+): watching pid", text)]

    def close(self) -> None:
        for pid in self.watchdog_pids():  # spawned by our Locust; normally gone already
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}/cmdline").exists() else b""
            if b"chaos_events.run.watchdog" in cmdline:
                os.kill(pid, signal.SIGKILL)
        for proc in reversed(self.procs):
            if proc is self.victim and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
            stop_group(proc, grace=5)
        for handle in ("out", "err"):
            if hasattr(self, handle):
                getattr(self, handle).close()


def assert_no_traceback(output: str) -> None:
    assert "Traceback" not in output, output[-4000:]


# -- the tests ------------------------------------------------------------------------------------------------
def test_run_time_ends_mid_fault(scene):
    run = scene.run(scene.args("4s"))
    assert "inject pause victim [f0#1]" in run.output, run.output[-4000:]
    assert "T" in scene.seen, "the victim was never paused"
    scene.assert_reverted(run.output)
    scene.assert_reports()
    # The run ended 3 s into a 60 s fault: reverted, and the verdict says the fault was cut short.
    assert run.returncode == scene.report()["verdict"]["exit_code"] == ExitCode.INCOMPLETE, run.output[-4000:]
    assert "cut short" in scene.report()["verdict"]["headline"], scene.report()["verdict"]["headline"]
    assert re.search(r"revert pause victim \[f0#1\]", run.output)


FAILING_REQUESTS = """
import chaos_events
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/missing")
"""

# Over the whole run: the signal may land before any request falls inside the fault window.
STRICT_SCENARIO = DEFAULT_SCENARIO.replace("{name: few-errors, metric: error_rate, max: 0.5}",
                                           "{name: no-errors, metric: error_rate, during: all, max: 0}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_mid_fault_reverts(scene, sig):
    # Every request fails (404), so Locust alone would exit 1; the broken SLO must give the harness's 3.
    scene.write_locustfile(FAILING_REQUESTS)
    scene.write_scenario(STRICT_SCENARIO)
    proc = scene.start(scene.args("60s"))
    scene.wait_paused(proc=proc)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)    # as Ctrl-C does: the whole foreground group (the watchdog has its own session)
    else:
        os.kill(proc.pid, sig)
    code = scene.wait_exit(proc)
    output = scene.output()
    scene.assert_reverted(output)
    scene.assert_reports()
    assert re.search(r"revert pause victim \[f0#1\]", output), output[-4000:]
    # The SLO broke (3) and the signal cut the fault short (6): incomplete wins, both are in the report.
    assert code == scene.report()["verdict"]["exit_code"] == ExitCode.INCOMPLETE, output[-4000:]
    assert [r["status"] for r in scene.report()["verdict"]["results"]] == ["fail"], output[-4000:]
    assert_no_traceback(output)



SLOW_INJECT = DEFAULT_LOCUSTFILE + """

import gevent
from chaos_events.faults import service


_pause_inject = service.Pause.inject


def slow_inject(self, ctx):
    # Stands in for a slow inject (a Docker or proxy call): the victim is paused, the inject is still in flight.
    _pause_inject(self, ctx)
    gevent.sleep(10)


service.Pause.inject = slow_inject
"""


def test_sigterm_during_an_inject_in_flight_reverts_once(scene):
    scene.write_locustfile(SLOW_INJECT)
    proc = scene.start(scene.args("60s"))
    scene.wait_paused(proc=proc)
    os.kill(proc.pid, signal.SIGTERM)
    scene.wait_exit(proc)
    output = scene.output()
    scene.assert_reverted(output)
    # stop() alone unwinds: one revert, under the stop's reason (the killed timeline must not race it).
    assert re.findall(r"revert pause victim \[f0#1\].*", output) == ["revert pause victim [f0#1] (test stopped)"], \
        output[-4000:]
    # The inject under way was allowed to finish, so the record knows the fault happened.
    events = json.loads((scene.reports / "chaos-report.json").read_text())["record"]["events"]
    assert [e["kind"] for e in events if e["fault_id"] == "f0#1"] == ["injected", "reverted"], events
    assert_no_traceback(output)

RAISING_TASK = """
import chaos_events
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/")
        raise RuntimeError("boom in a task")
"""

RAISING_ON_START = """
import chaos_events
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    def on_start(self):
        raise RuntimeError("boom in on_start")

    @task
    def visit(self):
        self.client.get("/")
"""

RAISING_HOOKS = """
import chaos_events
from locust import FastHttpUser, constant, events, task


@events.test_start.add_listener
def broken_test_start(**kwargs):
    raise RuntimeError("boom in test_start")


@events.request.add_listener
def broken_request_hook(**kwargs):
    raise RuntimeError("boom in a request hook")


@events.test_stop.add_listener
def broken_test_stop(**kwargs):
    raise RuntimeError("boom in test_stop")


@events.quitting.add_listener
def broken_quitting(**kwargs):
    raise RuntimeError("boom in quitting")


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/")
"""


@pytest.mark.parametrize("locustfile, boom", [(RAISING_TASK, "boom in a task"), (RAISING_ON_START, "boom in on_start"),
                                              (RAISING_HOOKS, "boom in a request hook")],
                         ids=["task", "on_start", "hooks"])
def test_user_code_exceptions_still_inject_and_revert(scene, locustfile, boom):
    scene.write_locustfile(locustfile)
    run = scene.run(scene.args("4s"))
    assert boom in run.output, run.output[-4000:]       # Locust logged the user's error ...
    if locustfile is RAISING_HOOKS:
        for other in ("boom in test_start", "boom in test_stop", "boom in quitting"):
            assert other in run.output, run.output[-4000:]
    assert "inject pause victim [f0#1]" in run.output, run.output[-4000:]
    assert "T" in scene.seen, "the victim was never paused"
    scene.assert_reverted(run.output)                   # ... and the harness still reverted at the end
    scene.assert_reports()
    assert run.returncode == scene.report()["verdict"]["exit_code"], run.output[-4000:]
    assert run.returncode == ExitCode.INCOMPLETE, run.output[-4000:]   # the 60 s fault was cut short by the end


def test_web_ui_stop_reverts_promptly_and_keeps_locust_running(scene):
    web_port = free_port()
    proc = scene.start(scene.args(None, "--web-host", "127.0.0.1", "--web-port", str(web_port), "--autostart",
                                  headless=False))
    scene.wait_paused(proc=proc)
    # Locust 2.47's web UI stops a run with POST /stop (a GET is 405).
    request = urllib.request.Request(f"http://127.0.0.1:{web_port}/stop", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    assert poll(lambda: not scene.victim_paused(), 5.0), f"not reverted within 5 s of the stop\n{scene.output()[-4000:]}"
    scene.assert_reverted(scene.output())
    assert proc.poll() is None, f"the web UI stop ended Locust\n{scene.output()[-4000:]}"
    # The web UI path judges the run once its last reports are in, and writes the reports; Locust keeps serving.
    assert poll(lambda: (scene.reports / "chaos-report.json").is_file(), 30), scene.output()[-4000:]
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGTERM)
    code = scene.wait_exit(proc)
    scene.assert_reverted(scene.output())
    # A fault cut short by the stop proved less than planned: the run is incomplete, not a pass.
    report = scene.report()
    assert code == report["verdict"]["exit_code"] == ExitCode.INCOMPLETE, scene.output()[-4000:]
    assert [m["reason"].split(":")[0] for m in report["verdict"]["summary"]["missing_faults"]] == ["cut short"], report["verdict"]
    assert_no_traceback(scene.output())


def test_sigkill_with_watchdog_reverts(scene):
    proc = scene.start(scene.args("60s"))
    scene.wait_paused(proc=proc)
    assert poll(lambda: scene.watchdog_pids() != [], 10), "the watchdog never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert poll(lambda: not scene.victim_paused(), 20), \
        f"the watchdog did not revert\n{Path(f'{scene.journal}.watchdog.log').read_text()}"
    assert poll(lambda: scene.journal_entries() == {}, 10), scene.journal_entries()
    scene.assert_reverted()
    assert poll(lambda: all(proc_state(pid) in (None, "Z") for pid in scene.watchdog_pids()), 10), "the watchdog lingers"


def test_sigkill_without_watchdog_then_cli_revert(scene):
    proc = scene.start(scene.args("60s", "--chaos-no-watchdog"))
    scene.wait_paused(proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # Nobody is left to revert: the victim stays paused, and the journal names it.
    assert not poll(lambda: not scene.victim_paused(), 2.0), "something reverted although no watchdog ran"
    assert [e["description"] for e in scene.journal_entries().values()] == ["pause victim"], scene.journal_entries()
    assert scene.watchdog_pids() == []

    revert = [PYTHON, "-m", "chaos_events.cli", "revert", "--journal", str(scene.journal)]
    env = {**os.environ, **scene.env}
    first = subprocess.run(revert, cwd=scene.tmp, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "reverted" in first.stdout and "pause victim" in first.stdout, first.stdout
    scene.assert_reverted(first.stdout + first.stderr)

    second = subprocess.run(revert, cwd=scene.tmp, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to revert" in second.stdout, second.stdout
    assert_no_traceback(first.stdout + first.stderr + second.stdout + second.stderr)


FAILING_RESTART_SCENARIO = """
name: revert-fails
targets:
  victim: {process: {pidfile: "@PIDFILE@", restart: ["false"]}}
faults:
  - {at: 1s, for: 60s, fault: kill, target: victim}
slos:
  - {name: few-errors, metric: error_rate, max: 0.5}
"""


def test_failed_revert_exits_4_and_names_what_is_broken(scene):
    scene.write_scenario(FAILING_RESTART_SCENARIO)
    run = scene.run(scene.args("3s", "--chaos-no-watchdog"))
    output = run.output
    assert "inject kill victim" in output, output[-4000:]
    assert scene.victim.poll() is not None, "the kill fault did not kill the victim"
    assert run.returncode == 4, output[-4000:]
    assert re.search(r"REVERT FAILED kill victim .*the process is not running after the revert .*left degraded", output), \
        output[-4000:]
    assert "chaos verdict: REVERT FAILED (exit code 4)" in output, output[-4000:]
    # The entry stays in the journal for a retry with `chaos-events revert`.
    assert [e["description"].split(" (")[0] for e in scene.journal_entries().values()] == ["kill victim"], scene.journal_entries()
    verdict = scene.report()["verdict"]
    assert verdict["revert_failed"] is True and verdict["exit_code"] == 4
    assert_no_traceback(output)


