"""ChaosRunner: runs a scenario headless under Locust, one subprocess per call, each in its own report directory.

Part of the pytest plugin (chaos_events.pytest_plugin). Imports pytest, the standard library, PyYAML (lazily) and
the harness's event stream and units; never locust, gevent, docker or prometheus_client: Locust runs as a subprocess
in its own session and is ended by its pid, so a hung run cannot take the test process down with it.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytest

from chaos_events.backends.process import stop_group
from chaos_events.pytest_support.result import ChaosEvent, ChaosResult, Observation, tail
from chaos_events.pytest_support.target import ChaosTarget
from chaos_events.run.events import EVENTS_FILE, read_events
from chaos_events.scenario.units import parse_duration

DEFAULT_LOCUSTFILE = "locustfiles/platform.py"
# Beyond the run time: Locust start-up, the ledger audit's catch-up (scenario `catch_up`, 30 s by default) and reports.
OVERHEAD_S = 75.0
STOP_GRACE_S = 20.0          # SIGTERM lets the harness revert its faults; SIGKILL only after this
OBSERVE_AFTER_S = 2.0        # an `observe` callback runs this long after an injection, while the fault is active
# Scenario variables only a demo platform started by the fixture can fill (pidfiles, the proxy, the run dir).
DEMO_ONLY_VARIABLES = ("DEMO_RUN_DIR", "DEMO_PROXY_CONTROL", "DEMO_API_DIRECT_URL", "DEMO_KAFKA_DIRECT")


class ChaosRunner:
    """Runs scenarios headless against a ChaosTarget, one Locust subprocess at a time, each in its own report dir.

    Invariant: no Locust process outlives a call; on a timeout or an error it is stopped by its pid (SIGTERM, which
    makes the harness revert its faults, then SIGKILL).
    Example: runner(scenario_dict, run_time="15s", users=8, observe=lambda ev: target.health()) -> ChaosResult
    """

    def __init__(self, target: ChaosTarget, report_root: Path, rootdir: Path, locustfile: str = DEFAULT_LOCUSTFILE,
                 on_result: Callable[[ChaosResult], None] | None = None, test_dir: Path | None = None):
        self.target = target
        self.test_dir = Path(test_dir) if test_dir else None
        self.report_root = Path(report_root)
        self.rootdir = Path(rootdir)
        self.locustfile = locustfile
        self.on_result = on_result
        self.runs = 0
        self.current_dir: Path | None = None

    def active_faults(self) -> dict[str, dict]:
        """The running harness's revert journal: fault id -> entry (type, target, state such as child pids or the
        fill file's path) for every fault injected and not yet reverted. For `observe` callbacks."""
        if self.current_dir is None:
            return {}
        try:
            data = json.loads((self.current_dir / "chaos-journal.json").read_text())
        except (OSError, ValueError):
            return {}
        return dict(data.get("entries") or {})

    def __call__(self, scenario: str | os.PathLike | Mapping[str, Any], run_time: str | float = "20s", users: int = 10,
                 spawn_rate: float | None = None, locustfile: str | None = None, env: Mapping[str, str] | None = None,
                 observe: Callable[[ChaosEvent], Any] | None = None, observe_after_s: float = OBSERVE_AFTER_S,
                 extra_args: Iterable[str] = (), timeout_s: float | None = None) -> ChaosResult:
        self.runs += 1
        run_dir = self.report_root / f"run-{self.runs}"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.current_dir = run_dir
        scenario_path = self._scenario_file(scenario, run_dir)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.target.env(), **(env or {})}
        self._skip_if_needs_demo(scenario_path, full_env)
        run_s = parse_duration(run_time) if isinstance(run_time, str) else float(run_time)
        locustfile_path = Path(locustfile or self.locustfile)
        if not locustfile_path.is_absolute():
            locustfile_path = self.rootdir / locustfile_path
        argv = [sys.executable, "-m", "locust", "-f", str(locustfile_path), "--headless",
                "-u", str(users), "-r", str(spawn_rate or users), "--run-time", f"{run_s:g}s",
                "--host", self.target.api_url, "--chaos-plan", str(scenario_path),
                "--chaos-report-dir", str(run_dir), "--chaos-metrics-port", "0",
                "--chaos-journal", str(run_dir / "chaos-journal.json"), "--only-summary", *extra_args]
        if self.target.kafka_bootstrap:
            argv[argv.index("--chaos-plan"):argv.index("--chaos-plan")] = ["--kafka-bootstrap", self.target.kafka_bootstrap]
        exit_code, output, observations = _run_locust(argv, full_env, self.rootdir, timeout_s or run_s + OVERHEAD_S,
                                                      observe, observe_after_s, run_dir / EVENTS_FILE)
        (run_dir / "locust-output.txt").write_text(output)
        report = None
        report_path = run_dir / "chaos-report.json"
        if report_path.exists():
            report = json.loads(report_path.read_text())
        result = ChaosResult(exit_code, report, run_dir, output, scenario_path, observations)
        if self.on_result is not None:
            self.on_result(result)
        if exit_code == 2 and report is None:
            pytest.fail(f"the harness refused the scenario {scenario_path} (exit code 2)\n{tail(output)}", pytrace=False)
        for obs in observations:
            if obs.error is not None:  # an assertion inside `observe` fails the test, after the run ended cleanly
                raise obs.error
        return result

    def _scenario_file(self, scenario: Any, run_dir: Path) -> Path:
        if isinstance(scenario, Mapping):
            import yaml

            path = run_dir / "scenario.yml"
            path.write_text(yaml.safe_dump(dict(scenario), sort_keys=False))
            return path
        path = Path(scenario)
        if not path.is_absolute():
            # Relative to the test file first (scenarios next to their tests), else to the rootdir.
            near = self.test_dir / path if self.test_dir else None
            path = near if near is not None and near.is_file() else self.rootdir / path
        if not path.is_file():
            pytest.fail(f"scenario file not found: {path}", pytrace=False)
        return path

    def _skip_if_needs_demo(self, scenario_path: Path, env: Mapping[str, str]) -> None:
        if self.target.is_demo:
            return
        text = scenario_path.read_text(encoding="utf-8")
        missing = [v for v in DEMO_ONLY_VARIABLES if ("${" + v) in text and not env.get(v)]
        if missing:
            pytest.skip(f"scenario {scenario_path.name} needs the demo platform ({', '.join('$' + v for v in missing)}: "
                        f"its pidfiles, proxy or run dir); the target is {self.target.api_url}")



def _run_locust(argv: list[str], env: Mapping[str, str], cwd: Path, timeout_s: float,
                observe: Callable[[ChaosEvent], Any] | None, observe_after_s: float,
                events_path: Path) -> tuple[int, str, list[Observation]]:
    """Run Locust to completion, following the run's event stream (`events_path`, JSON lines the session writes) so
    `observe` runs while each fault is active; the output is kept for the test's failure messages only."""
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, name="locust-output", daemon=True)
    reader.start()
    output: list[str] = []
    follower = _FaultFollower(events_path, observe, observe_after_s)
    try:
        _read_output(proc, reader, lines, output, follower, time.monotonic() + timeout_s, timeout_s)
        proc.wait(timeout=30)
    except BaseException:
        stop_group(proc, grace=STOP_GRACE_S)
        raise
    finally:
        if proc.poll() is None:
            stop_group(proc, grace=STOP_GRACE_S)
        reader.join(timeout=5)
        if not reader.is_alive():  # else a leftover child holds the pipe; the daemon reader ends with it
            proc.stdout.close()
    return proc.returncode, "".join(output), follower.finish()


def _read_output(proc: subprocess.Popen, reader: threading.Thread, lines: "queue.Queue[str | None]",
                 output: list[str], follower: "_FaultFollower", deadline: float, timeout_s: float) -> None:
    """Collect Locust's output until it ends, observing faults as they come; past the deadline stop it and fail."""
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        if now > deadline:
            stop_group(proc, grace=STOP_GRACE_S)
            reader.join(timeout=5)
            pytest.fail(f"locust did not finish within {timeout_s:g} s; stopped it (pid {proc.pid})\n"
                        f"{tail(''.join(output) + _drain(lines))}", pytrace=False)
        follower.follow(now)
        wait = min([deadline - now] + follower.next_due_in(now))
        try:
            line = lines.get(timeout=max(0.01, min(wait, 0.5)))
        except queue.Empty:
            if proc.poll() is not None:
                # Locust has exited; a child it left behind may still hold the pipe open: stop reading soon.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 3.0:
                    return
            continue
        if line is None:
            return
        output.append(line)


class _FaultFollower:
    """Follows the run's event stream; `observe` runs `observe_after_s` after each injection, while the fault is on.

    Invariant: `pending` is sorted by due time; every injection seen ends up in `observations` once `finish()` ran.
    """

    def __init__(self, events_path: Path, observe: Callable[[ChaosEvent], Any] | None, observe_after_s: float):
        self.events_path, self.observe, self.observe_after_s = events_path, observe, observe_after_s
        self.offset = 0
        self.pending: list[tuple[float, ChaosEvent]] = []
        self.observations: list[Observation] = []

    def follow(self, now: float) -> None:
        """Read the new events; observe every injection that is due."""
        fresh, self.offset = read_events(self.events_path, self.offset)
        for item in fresh:
            if item.get("kind") == "injected" and self.observe is not None:
                event = ChaosEvent(float(item["t"]), "inject", item["fault_id"], item["fault"], item["target"])
                self.pending.append((time.monotonic() + self.observe_after_s, event))
                self.pending.sort(key=lambda p: p[0])
        while self.pending and self.pending[0][0] <= now:
            _, event = self.pending.pop(0)
            self.observations.append(_observe(self.observe, event))

    def next_due_in(self, now: float) -> list[float]:
        """Seconds until the next observation is due: one value, or none when nothing waits."""
        return [due - now for due, _ in self.pending[:1]]

    def finish(self) -> list[Observation]:
        """Every observation; a fault shorter than observe_after_s is observed anyway."""
        for _, event in self.pending:
            self.observations.append(_observe(self.observe, event))
        self.pending = []
        return self.observations


def _observe(observe: Callable[[ChaosEvent], Any] | None, event: ChaosEvent) -> Observation:
    try:
        return Observation(event, observe(event) if observe else None)
    except Exception as exc:  # kept, and raised after Locust ended, so the faults are reverted first
        return Observation(event, None, exc)


def _drain(lines: "queue.Queue[str | None]") -> str:
    out = []
    while True:
        try:
            item = lines.get_nowait()
        except queue.Empty:
            return "".join(out)
        if item is not None:
            out.append(item)

