"""pytest plugin: write chaos experiments as tests. A scenario runs under real Locust load; the test reads the verdict.

Registered as a `pytest11` entry point, so an installed chaos-events offers it everywhere; in this repository
tests/chaos/conftest.py hands it its hooks when nothing registered it (see the reason there). Imports pytest, the standard library, PyYAML and the harness's pure core (record,
verdict.stats); never locust, gevent, docker or prometheus_client: Locust runs as a subprocess in its own session
and is ended by its pid, so a hung run cannot take the test process down with it.

Fixtures and marker:
- `chaos_target`: what the load and the faults aim at. By default a fresh demo platform (chaos_events.demo.supervisor) in the
  test's tmp dir, stopped at the end; with `--chaos-target-url URL` (or $CHAOS_TARGET_URL, plus
  `--chaos-target-kafka` / $CHAOS_TARGET_KAFKA) the user's platform, and the demo is not started.
- `chaos_run`: a ChaosRunner. `chaos_run("scenario.yml" | {...}, run_time="20s", users=10, env=None,
  observe=None) -> ChaosResult`; `observe(event)` runs while each injected fault is active, and what it returns
  (or raises, after the run ended and every fault was reverted) lands in the result.
- ChaosResult: `.exit_code`, `.verdict` (SloView list), `.slo(name)`, `.phases` / `.phase(name, endpoints)`,
  `.between(t0, t1, endpoints)`, `.events`, `.injected()`, `.reverted()`, `.probe_samples(probe)`, `.ledger(check)`,
  `.observed(fault)`, `.report_dir`, `.output`, `.assert_slos(*names)` (fails with the verdict table),
  `.assert_reverted()`.
- `@pytest.mark.chaos(scenario=..., run_time=..., users=...)` with the `chaos_result` fixture: the run happens before
  the test body; after the body, the SLOs are asserted unless the marker says `assert_slos=False`.

Example:
    def test_broker_pause(chaos_target, chaos_run):
        result = chaos_run("tests/chaos/scenarios/broker-pause.yml", run_time="20s")
        assert result.phase("fault").error_rate > result.phase("baseline").error_rate
        result.assert_slos()
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytest

from chaos_events.backends.process import stop_group
from chaos_events.run.events import EVENTS_FILE, read_events
from chaos_events.scenario.units import parse_duration

DEFAULT_LOCUSTFILE = "locustfiles/platform.py"
# Beyond the run time: Locust start-up, the ledger audit's catch-up (scenario `catch_up`, 30 s by default) and reports.
OVERHEAD_S = 75.0
STOP_GRACE_S = 20.0          # SIGTERM lets the harness revert its faults; SIGKILL only after this
OBSERVE_AFTER_S = 2.0        # an `observe` callback runs this long after an injection, while the fault is active
# Scenario variables only a demo platform started by the fixture can fill (pidfiles, the proxy, the run dir).
DEMO_ONLY_VARIABLES = ("DEMO_RUN_DIR", "DEMO_PROXY_CONTROL", "DEMO_API_DIRECT_URL", "DEMO_KAFKA_DIRECT")


# -- options, marker -----------------------------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("chaos-events", "chaos experiments under load (chaos-events)")
    group.addoption("--chaos-target-url", default=None,
                    help="Run chaos tests against this platform's HTTP API instead of starting the demo platform "
                         "(env CHAOS_TARGET_URL). Scenarios that need the demo's pidfiles or proxy are skipped.")
    group.addoption("--chaos-target-kafka", default=None,
                    help="Kafka bootstrap servers of the platform given by --chaos-target-url (env CHAOS_TARGET_KAFKA).")
    group.addoption("--chaos-report-root", default=None,
                    help="Directory for each chaos test's reports (one subdirectory per test). Default: the test's tmp dir.")
    parser.addini("chaos_locustfile", default=DEFAULT_LOCUSTFILE,
                  help="Locustfile chaos_run uses when a test names none (relative to the rootdir).")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "chaos(scenario, run_time='20s', users=10, spawn_rate=None, locustfile=None, env=None, assert_slos=True): "
        "run the scenario under load before the test (fixture chaos_result); assert its SLOs after the test body.")


def pytest_collection_modifyitems(session, config, items):
    # A marked test gets its run even when it does not ask for `chaos_result` by name.
    for item in items:
        if item.get_closest_marker("chaos") is not None and "chaos_result" not in getattr(item, "fixturenames", ["chaos_result"]):
            item.fixturenames.append("chaos_result")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # raises when the test body failed: then its own failure is the one to report
    assert_marked_slos(item)
    return result


def assert_marked_slos(item) -> None:
    """After the body of a `@pytest.mark.chaos` test that passed: its run's SLOs, unless `assert_slos=False`."""
    marker = item.get_closest_marker("chaos")
    result = getattr(item, "_chaos_result", None)
    if marker is None or result is None:
        return
    if marker.kwargs.get("assert_slos", True):
        result.assert_slos()


# -- the target ----------------------------------------------------------------------------------------------
@dataclass
class ChaosTarget:
    """The platform a chaos test runs against. Invariant: `platform` is set exactly when the demo was started here.

    Example: ChaosTarget("http://127.0.0.1:8000", "127.0.0.1:19092").health() -> (200, {"status": "ok", ...})
    """

    api_url: str
    kafka_bootstrap: str = ""
    platform: Any = None                      # chaos_events.demo.supervisor.Platform, when the demo runs
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        return self.platform is not None

    def env(self) -> dict[str, str]:
        """What scenarios interpolate: the demo's DEMO_* facts, or DEMO_API_URL / DEMO_KAFKA_BOOTSTRAP for a user target."""
        if self.platform is not None:
            env = dict(self.platform.env())
        else:
            env = {"DEMO_API_URL": self.api_url, "CHAOS_TARGET_URL": self.api_url}
            if self.kafka_bootstrap:
                env.update(DEMO_KAFKA_BOOTSTRAP=self.kafka_bootstrap, CHAOS_TARGET_KAFKA=self.kafka_bootstrap)
        return {**env, **self.extra_env}

    def require_demo(self, why: str = "") -> Any:
        """The demo Platform, or skip the test: it needs the demo's pidfiles, proxy or store."""
        if self.platform is None:
            pytest.skip(f"needs the demo platform{': ' + why if why else ''}; the target is {self.api_url} (--chaos-target-url)")
        return self.platform

    def get_json(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """GET api_url + path: (status, parsed JSON body or text). A refused connection is status 0."""
        return http_json("GET", self.api_url + path, timeout=timeout)

    def health(self) -> tuple[int, Any]:
        return self.get_json("/health")

    def wait_healthy(self, timeout: float = 30.0) -> dict:
        """Wait until /health answers 200; fail the test with the last answer otherwise."""
        deadline = time.monotonic() + timeout
        status, body = 0, None
        while time.monotonic() < deadline:
            status, body = self.health()
            if status == 200:
                return body
            time.sleep(0.25)
        pytest.fail(f"{self.api_url}/health did not answer 200 within {timeout:g} s; last answer {status}: {body}")


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One HTTP request with the standard library: (status, JSON body or text); (0, error text) when unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Accept": "application/json", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        return 0, str(getattr(exc, "reason", None) or exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# -- results -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SloView:
    """One SLO result from chaos-report.json: status is "pass", "fail" or "not_verifiable"."""

    name: str
    metric: str
    status: str
    value: float | None
    limit: float | None
    unit: str
    message: str
    details: dict

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class PhaseView:
    """Observed behaviour in one phase; the *_change fields compare with the baseline (None for the baseline)."""

    phase: str
    requests: int
    failures: int
    error_rate: float | None
    rps: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    duration_s: float
    error_rate_change: float | None = None
    p95_ratio: float | None = None
    rps_change: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PhaseView":
        return cls(data["phase"], data["requests"], data["failures"], data["error_rate"], data["rps"], data["p50_ms"],
                   data["p95_ms"], data["p99_ms"], data["duration_s"], data.get("error_rate_change"),
                   data.get("p95_ratio"), data.get("rps_change"))


@dataclass(frozen=True)
class ChaosEvent:
    """A fault event of the run: kind "injected", "reverted", "inject_failed", "revert_failed" (from the report) or
    "inject" (followed live in the run's event stream, for `observe`)."""

    t: float
    kind: str
    fault_id: str
    fault_type: str
    target: str
    detail: str = ""


@dataclass
class Observation:
    """What an `observe` callback returned (or raised) while a fault was active."""

    event: ChaosEvent
    value: Any = None
    error: BaseException | None = None


class ChaosResult:
    """One finished chaos run: exit code, the chaos-report.json content, the console output, and observations.

    Example: result.slo("recovery").passed; result.phase("fault").error_rate; result.assert_slos()
    """

    def __init__(self, exit_code: int, report: dict | None, report_dir: Path, output: str, scenario_path: Path,
                 observations: list[Observation]):
        self.exit_code = exit_code
        self.report = report or {}
        self.report_dir = report_dir
        self.output = output
        self.scenario_path = scenario_path
        self.observations = observations

    # -- verdict
    @property
    def verdict(self) -> list[SloView]:
        return [SloView(r["name"], r["metric"], r["status"], r["value"], r["limit"], r["unit"], r["message"], r["details"])
                for r in self.report.get("verdict", {}).get("results", [])]

    def slo(self, name: str) -> SloView:
        for view in self.verdict:
            if view.name == name:
                return view
        raise KeyError(f"no SLO named {name!r} in {self.report_dir / 'chaos-report.json'}; "
                       f"SLOs: {', '.join(v.name for v in self.verdict) or '(none)'}")

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def verdict_table(self) -> str:
        rows = [("SLO", "METRIC", "VALUE", "LIMIT", "RESULT", "MESSAGE")]
        for v in self.verdict:
            rows.append((v.name, v.metric, _fmt(v.value, v.unit), _fmt(v.limit, v.unit), v.status.upper(), v.message))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"chaos verdict: {self.report.get('result', 'NO REPORT')} (exit code {self.exit_code}); "
                     f"reports in {self.report_dir}")
        return "\n".join(lines)

    def assert_slos(self, *names: str, allow_not_verifiable: bool = True) -> None:
        """Fail with the verdict table unless every SLO (or the named ones) held and every fault was reverted."""
        if not self.report:
            pytest.fail(f"no chaos-report.json in {self.report_dir} (exit code {self.exit_code})\n{_tail(self.output)}",
                        pytrace=False)
        chosen = [self.slo(n) for n in names] if names else self.verdict
        ok = {"pass", "not_verifiable"} if allow_not_verifiable else {"pass"}
        broken = [v for v in chosen if v.status not in ok]
        if broken or self.exit_code == 4 or (not names and self.exit_code not in (0, 3)):
            what = ", ".join(v.name for v in broken) or f"exit code {self.exit_code}"
            pytest.fail(f"chaos SLOs not met ({what}):\n{self.verdict_table()}\n{_unexpected(self.report)}", pytrace=False)

    # -- phases and events
    @property
    def phases(self) -> dict[str, PhaseView]:
        return {name: PhaseView.from_dict(data) for name, data in self.report.get("phase_stats", {}).items()}

    def phase(self, name: str, endpoints: str | Iterable[str] | None = None) -> PhaseView:
        """Per-phase stats over all endpoints, or only `endpoints` ("POST /api/events" or a list of such)."""
        if endpoints is None:
            phases = self.phases
            if name not in phases:
                pytest.fail(f"the run has no {name!r} phase; phases: {', '.join(phases) or '(none)'}\n{_tail(self.output)}")
            return phases[name]
        return self._phase_for(name, endpoints)

    def _phase_for(self, name: str, endpoints: str | Iterable[str]) -> PhaseView:
        from chaos_events.scenario.model import Phase
        from chaos_events.record import Record
        from chaos_events.verdict import stats
        from chaos_events.verdict.figures import phase_figures
        from chaos_events.verdict.phases import PhaseSpan

        record = Record.from_dict(self.report["record"])
        spans = [PhaseSpan(Phase(s["phase"]), s["start_t"], s["end_t"], s["occurrence_id"]) for s in self.report["phases"]]
        flt = stats.EndpointFilter.parse(endpoints if isinstance(endpoints, str) else list(endpoints))
        phase = Phase(name)
        figures = phase_figures(record, spans, flt, wanted=(phase,), min_duration_s=0.0)[phase.value]
        return PhaseView.from_dict(figures.to_dict())

    def between(self, start_t: float, end_t: float, endpoints: str | Iterable[str] | None = None) -> PhaseView:
        """Stats over the whole seconds of run time that lie entirely in [start_t, end_t), e.g. a baseline without the
        second in which the first fault began (request windows are whole wall-clock seconds)."""
        from chaos_events.record import Record
        from chaos_events.verdict import stats

        record = Record.from_dict(self.report["record"])
        flt = stats.EndpointFilter.parse(None if endpoints is None else endpoints if isinstance(endpoints, str) else list(endpoints))
        agg = stats.Agg()
        per_second = stats.per_second(record, flt)
        seconds = [s for s in per_second if record.t_of(s) >= start_t and record.t_of(s) + 1 <= end_t]
        for second in seconds:
            agg.add(per_second[second])
        span = float(len(seconds))
        return PhaseView(f"{start_t:g}s-{end_t:g}s", agg.count, agg.failures, agg.error_rate,
                         agg.count / span if span else None, agg.percentile_ms(0.50), agg.percentile_ms(0.95),
                         agg.percentile_ms(0.99), span)

    @property
    def events(self) -> list[ChaosEvent]:
        return [ChaosEvent(e["t"], e["kind"], e["fault_id"], e["fault_type"], e["target"], e.get("detail", ""))
                for e in self.report.get("timeline", [])]

    def injected(self, fault_type: str | None = None) -> list[ChaosEvent]:
        return [e for e in self.events if e.kind == "injected" and fault_type in (None, e.fault_type)]

    def reverted(self, fault_type: str | None = None) -> list[ChaosEvent]:
        return [e for e in self.events if e.kind == "reverted" and fault_type in (None, e.fault_type)]

    def assert_reverted(self) -> None:
        """Every injected fault has a successful revert event."""
        injected = {e.fault_id for e in self.injected()}
        reverted = {e.fault_id for e in self.reverted()}
        if not injected:
            pytest.fail(f"no fault was injected\n{_tail(self.output)}", pytrace=False)
        if injected - reverted:
            pytest.fail(f"faults not reverted: {sorted(injected - reverted)}\n{_unexpected(self.report)}", pytrace=False)

    def probe_samples(self, probe: str) -> list[dict]:
        """Raw probe samples from the record: dicts with t, healthy, value, detail."""
        return [s for s in self.report.get("record", {}).get("probes", []) if s["probe"] == probe]

    def endpoint_totals(self, prefix: str = "") -> dict[str, dict[str, int]]:
        """Total count and failures per "METHOD name" (optionally only names starting with `prefix`)."""
        out: dict[str, dict[str, int]] = {}
        for w in self.report.get("record", {}).get("windows", []):
            if not w["name"].startswith(prefix):
                continue
            row = out.setdefault(f"{w['method']} {w['name']}", {"count": 0, "failures": 0})
            row["count"] += w["count"]
            row["failures"] += w["failures"]
        return out

    def ledger(self, check: str) -> dict | None:
        """The ledger audit result of a check ("kafka" or "pipeline"), when the scenario asked for it."""
        for row in self.report.get("record", {}).get("ledger", []):
            if row["check"] == check:
                return row
        return None

    def observed(self, fault: str) -> Any:
        """The value an `observe` callback returned for the first occurrence of a fault type (or fault id)."""
        for obs in self.observations:
            if fault in (obs.event.fault_type, obs.event.fault_id):
                return obs.value
        raise KeyError(f"nothing observed for {fault!r}; observed: {[o.event.fault_id for o in self.observations]}")

    def __repr__(self) -> str:
        return f"<ChaosResult exit_code={self.exit_code} result={self.report.get('result')} dir={self.report_dir}>"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "s":
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"
    return f"{value:g} {unit}".strip()


def _tail(text: str, lines: int = 40) -> str:
    return "--- last lines of the Locust output ---\n" + "\n".join(text.splitlines()[-lines:])


def _unexpected(report: dict) -> str:
    items = report.get("unexpected") or []
    return ("unexpected: " + "; ".join(items)) if items else ""


# -- the runner ----------------------------------------------------------------------------------------------
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
            pytest.fail(f"the harness refused the scenario {scenario_path} (exit code 2)\n{_tail(output)}", pytrace=False)
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
    events_offset = 0
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
    observations: list[Observation] = []
    pending: list[tuple[float, ChaosEvent]] = []
    deadline = time.monotonic() + timeout_s
    finished = False
    exited_at: float | None = None
    try:
        while not finished:
            now = time.monotonic()
            if now > deadline:
                stop_group(proc, grace=STOP_GRACE_S)
                reader.join(timeout=5)
                pytest.fail(f"locust did not finish within {timeout_s:g} s; stopped it (pid {proc.pid})\n"
                            f"{_tail(''.join(output) + _drain(lines))}", pytrace=False)
            fresh, events_offset = read_events(events_path, events_offset)
            for item in fresh:
                if item.get("kind") == "injected" and observe is not None:
                    event = ChaosEvent(float(item["t"]), "inject", item["fault_id"], item["fault"], item["target"])
                    pending.append((time.monotonic() + observe_after_s, event))
                    pending.sort(key=lambda p: p[0])
            while pending and pending[0][0] <= now:
                _, event = pending.pop(0)
                observations.append(_observe(observe, event))
            wait = min([deadline - now] + [due - now for due, _ in pending[:1]])
            try:
                line = lines.get(timeout=max(0.01, min(wait, 0.5)))
            except queue.Empty:
                if proc.poll() is not None:
                    # Locust has exited; a child it left behind may still hold the pipe open: stop reading soon.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > 3.0:
                        break
                continue
            if line is None:
                finished = True
                break
            output.append(line)
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
    for _, event in pending:  # a fault shorter than observe_after_s: observe it anyway
        observations.append(_observe(observe, event))
    return proc.returncode, "".join(output), observations


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


# -- fixtures ------------------------------------------------------------------------------------------------
def _target_url(config) -> str | None:
    # getoption with a default: loaded late from a conftest, the options may not exist (see tests/chaos/conftest.py).
    return config.getoption("chaos_target_url", None) or os.environ.get("CHAOS_TARGET_URL") or None


@contextlib.contextmanager
def open_chaos_target(config, run_dir: Path):
    """The target the options name, or a demo platform started in `run_dir` and stopped on exit.

    For a conftest that wants another fixture scope, e.g. one demo platform per module:
        @pytest.fixture(scope="module")
        def chaos_target(request, tmp_path_factory):
            with open_chaos_target(request.config, tmp_path_factory.mktemp("demo")) as target:
                yield target
    """
    url = _target_url(config)
    if url:
        kafka = config.getoption("chaos_target_kafka", None) or os.environ.get("CHAOS_TARGET_KAFKA") or ""
        yield ChaosTarget(url.rstrip("/"), kafka)
        return
    try:
        from chaos_events.demo.supervisor import start_platform
    except ImportError as exc:
        pytest.skip(f"no demo platform to start ({exc}); give --chaos-target-url or install chaos-events[demo]")
    platform = start_platform(Path(run_dir) / "demo")
    try:
        yield ChaosTarget(platform.api_url, platform.kafka_bootstrap, platform=platform)
    finally:
        platform.stop()


@pytest.fixture
def chaos_target(request, tmp_path):
    """The platform under test: the user's (--chaos-target-url / $CHAOS_TARGET_URL), else a fresh demo platform."""
    with open_chaos_target(request.config, tmp_path) as target:
        yield target


@pytest.fixture
def chaos_run(request, chaos_target, tmp_path):
    """A ChaosRunner bound to `chaos_target`; each call writes its reports under --chaos-report-root (or tmp)."""
    config = request.config
    root = config.getoption("chaos_report_root", None)
    if root:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
        report_root = Path(root).resolve() / safe
    else:
        report_root = tmp_path / "chaos-reports"

    def on_result(result: ChaosResult) -> None:
        request.node.user_properties.append(("chaos_report", str(result.report_dir / "chaos-report.json")))
        request.node.user_properties.append(("chaos_exit_code", result.exit_code))
        request.node.add_report_section("call", "chaos verdict", result.verdict_table())

    try:
        locustfile = config.getini("chaos_locustfile") or DEFAULT_LOCUSTFILE
    except ValueError:  # the ini key is unknown when the plugin was loaded late
        locustfile = DEFAULT_LOCUSTFILE
    return ChaosRunner(chaos_target, report_root, config.rootpath, locustfile,
                       on_result=on_result, test_dir=Path(str(request.node.path)).parent)


@pytest.fixture
def chaos_result(request, chaos_run):
    """The finished run of the test's `@pytest.mark.chaos(scenario=..., ...)`."""
    marker = request.node.get_closest_marker("chaos")
    if marker is None:
        pytest.fail("chaos_result needs @pytest.mark.chaos(scenario=...) on the test", pytrace=False)
    kwargs = dict(marker.kwargs)
    kwargs.pop("assert_slos", None)
    scenario = kwargs.pop("scenario", None) or (marker.args[0] if marker.args else None)
    if scenario is None:
        pytest.fail("@pytest.mark.chaos needs scenario=PATH (or a dict)", pytrace=False)
    result = chaos_run(scenario, **kwargs)
    request.node._chaos_result = result
    return result
