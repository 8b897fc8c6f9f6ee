"""The open model (locust_plugin/arrivals.py) against the closed one, with real Locust processes and real targets.

One module fixture runs three Locust processes side by side, each with a scenario whose `pause` fault (SIGSTOP, then
SIGCONT, by the harness itself) freezes its own target partway through:
- closed: 2 FastHttpUsers waiting 50 ms between requests (about 38 requests/s) against a stdlib HTTP server;
- open: 40 arrivals/s, max_concurrency 20, against another such server: the same nominal load;
- kafka: an open-model KafkaUser (50 arrivals/s, max_concurrency 25) against a real Tansu broker.
Every assertion compares what the recorded stats (Locust's --json-file stats, its --csv failures and the harness's
chaos-report.json) say about the runs; none times anything. A second test runs a master and two workers and counts the whole load; a third checks
that bad settings end the run with exit 2 and a message, before any load.
Every process started here is ended by its pid (its process group), even when a test fails.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from locust.stats import calculate_response_time_percentile

from chaos_events.backends.process import wait_until
from chaos_events.demo.broker import broker_argv, ensure_topics
from tests.helpers import LOCUST, ROOT, free_port, stop_group

PAUSE_S = 5
HEADER = "import chaos_events  # noqa: F401\n"

CLOSED = HEADER + """
from locust import FastHttpUser, constant, task


class Api(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def visit(self):
        self.client.get("/")
"""

OPEN = HEADER + """
from chaos_events.locust_plugin.arrivals import OpenModelUser, constant_rate
from locust import FastHttpUser, task


class Api(OpenModelUser, FastHttpUser):
    arrivals = constant_rate(40)
    max_concurrency = 20
    fixed_count = 2

    @task
    def visit(self):
        self.client.get("/")
"""

KAFKA_CAP = 25
KAFKA = HEADER + f"""
from chaos_events.locust_plugin.arrivals import OpenModelUser, constant_rate
from chaos_events.locust_plugin.users import KafkaUser
from locust import task


class Producer(OpenModelUser, KafkaUser):
    arrivals = constant_rate(50)
    max_concurrency = {KAFKA_CAP}

    @task
    def send(self):
        self.produce(b'{{"probe": true}}')
"""

SCENARIO = """
name: open-vs-closed
targets:
  victim: {{process: {{pidfile: "{pidfile}"}}}}
faults:
  - {{at: 3s, for: {pause}s, fault: pause, target: victim}}
slos:
  - {{name: anything-goes, metric: error_rate, max: 1.0}}
"""


@dataclass
class Run:
    """One finished Locust run: exit code, console, the harness's report, Locust's own stats and failures."""

    returncode: int
    log: str
    report: dict
    stats: list[dict]      # --json-file: written at the end (the --csv stats are the last 1-second snapshot)
    failures: list[dict]   # --csv failures: the (method, name, error) rows


class Processes:
    """Everything a test starts, each in a session of its own; `close()` resumes and ends every group by pid."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path | None = None, **kwargs) -> subprocess.Popen:
        out = open(log, "w") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        finally:
            if log:
                out.close()  # the child keeps its own copy
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)  # a target the harness left paused could not exit
                except ProcessLookupError:
                    pass
            stop_group(proc, grace=5)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def http_server(procs: Processes, tmp: Path) -> tuple[str, Path]:
    """A stdlib HTTP server on a free loopback port; returns its URL and a pidfile naming it."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text("<p>ok</p>\n")
    port = free_port()
    proc = procs.start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)])
    pidfile = tmp / f"http-{port}.pid"
    pidfile.write_text(f"{proc.pid}\n")
    if not wait_until(lambda: listening(port), 20):
        pytest.fail(f"the test HTTP server did not listen on 127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}", pidfile


def tansu(procs: Processes, tmp: Path) -> tuple[str, Path]:
    """A Tansu broker (memory storage) with the topic `events`; returns its bootstrap address and its pidfile."""
    port = free_port()
    proc = procs.start(broker_argv(port, port))
    pidfile = tmp / "tansu.pid"
    pidfile.write_text(f"{proc.pid}\n")
    if not wait_until(lambda: listening(port), 20):
        pytest.fail(f"Tansu did not listen on 127.0.0.1:{port} (exit code {proc.poll()})")
    ensure_topics(port, ["events"])
    return f"127.0.0.1:{port}", pidfile


def locust_args(tmp: Path, name: str, locustfile: str, pidfile: Path, pause_s: int, run_time: str) -> list[str]:
    (tmp / f"{name}.py").write_text(textwrap.dedent(locustfile))
    scenario = tmp / f"{name}.yml"
    scenario.write_text(SCENARIO.format(pidfile=pidfile, pause=pause_s))
    return ["-f", str(tmp / f"{name}.py"), "--headless", "-u", "2", "-r", "10", "--run-time", run_time,
            "--chaos-plan", str(scenario), "--chaos-report-dir", str(tmp / f"{name}-reports"), "--chaos-metrics-port", "0",
            "--chaos-journal", str(tmp / f"{name}-journal.json"), "--chaos-no-watchdog", "--csv", str(tmp / name), "--json-file", str(tmp / name)]


def finished(proc: subprocess.Popen, tmp: Path, name: str, timeout: float = 120) -> Run:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"locust ({name}) did not finish within {timeout}s:\n{(tmp / f'{name}.log').read_text()[-4000:]}")
    log = (tmp / f"{name}.log").read_text()
    report_path = tmp / f"{name}-reports" / "chaos-report.json"
    assert report_path.exists(), f"{name}: no chaos-report.json\n{log[-4000:]}"
    stats = json.loads((tmp / f"{name}.json").read_text())
    with open(tmp / f"{name}_failures.csv", newline="") as f:
        failures = list(csv.DictReader(f))
    return Run(proc.returncode, log, json.loads(report_path.read_text()), stats, failures)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """The three paused runs of the module docstring, side by side; every process ended by pid afterwards."""
    tmp = tmp_path_factory.mktemp("open-model")
    procs = Processes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    try:
        started = {}
        for name, locustfile in (("closed", CLOSED), ("open", OPEN)):
            (tmp / name).mkdir()
            url, pidfile = http_server(procs, tmp / name)
            args = locust_args(tmp, name, locustfile, pidfile, PAUSE_S, "12s") + ["--host", url]
            started[name] = procs.start([LOCUST, *args], log=tmp / f"{name}.log", cwd=tmp, env=env)
        bootstrap, pidfile = tansu(procs, tmp)
        args = locust_args(tmp, "kafka", KAFKA, pidfile, 3, "11s") + ["--kafka-bootstrap", bootstrap, "--kafka-topic", "events"]
        started["kafka"] = procs.start([LOCUST, *args], log=tmp / "kafka.log", cwd=tmp, env=env)
        yield {name: finished(proc, tmp, name) for name, proc in started.items()}
    finally:
        procs.close()


# -- reading the records ----------------------------------------------------------------------------------------
def pause_seconds(report: dict) -> range:
    """The whole wall-clock seconds that lie inside the pause (between its inject and its revert)."""
    walls = {e["kind"]: e["wall"] for e in report["record"]["events"] if e["fault_type"] == "pause"}
    assert {"injected", "reverted"} <= set(walls), report["record"]["events"]
    return range(int(walls["injected"]) + 1, int(walls["reverted"]))


def counted(report: dict, seconds: range | None = None) -> tuple[int, int, int]:
    """(requests, failures, requests with a latency of 1 s or more) in the report's windows, in `seconds` if given."""
    windows = [w for w in report["record"]["windows"] if seconds is None or w["second"] in seconds]
    slow = sum(n for w in windows for bucket, n in w["latency_ms"].items() if int(bucket) >= 1000)
    return sum(w["count"] for w in windows), sum(w["failures"] for w in windows), slow


def timed(report: dict) -> int:
    """How many requests the windows hold a latency for."""
    return sum(n for w in report["record"]["windows"] for n in w["latency_ms"].values())


def p95(entry: dict) -> int:
    """Locust's own 95th percentile of a --json-file entry (requests without a latency are not in it)."""
    times = {int(ms): n for ms, n in entry["response_times"].items()}
    return calculate_response_time_percentile(times, entry["num_requests"] - entry["num_none_requests"], 0.95)


# -- the comparison -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_open_model_reports_what_the_closed_model_hides(runs):
    closed, open_ = runs["closed"], runs["open"]
    for run in (closed, open_):
        assert run.returncode == 0, run.log[-4000:]
    # Both targets really froze: the closed model's users were stuck too (one slow request each, then silence).
    closed_total, closed_failures, closed_slow = counted(closed.report)
    assert closed_slow >= 1 and closed_failures == 0, closed.log[-3000:]

    window_closed, window_open = pause_seconds(closed.report), pause_seconds(open_.report)
    in_pause_closed, in_pause_open = counted(closed.report, window_closed), counted(open_.report, window_open)
    # While the target is frozen the closed model sends (nearly) nothing; the open model keeps arriving, and every
    # arrival beyond the cap is a failure.
    assert in_pause_open[0] > 10 * (in_pause_closed[0] + 1), (in_pause_open, in_pause_closed)
    assert in_pause_open[1] > 10 * (in_pause_closed[1] + 1), (in_pause_open, in_pause_closed)
    # The requests that were in flight during the freeze: a cap's worth in the open model, one per user in the closed.
    _, open_failures, open_slow = counted(open_.report)
    assert open_slow >= 5 * closed_slow, (open_slow, closed_slow)

    # Locust's own stats say the same: its p95 shows the freeze in the open model only.
    (closed_entry,), (open_entry,) = closed.stats, open_.stats
    assert p95(open_entry) > 10 * p95(closed_entry), (p95(open_entry), p95(closed_entry))
    # Dropped arrivals: under the request's own name, with the exact error, counted alike by Locust and the harness.
    assert closed.failures == []
    assert [(f["Method"], f["Name"], f["Error"]) for f in open_.failures] == [("GET", "/", "dropped: overloaded")]
    assert (open_entry["num_requests"], open_entry["num_failures"]) == counted(open_.report)[:2]
    # A dropped arrival has no latency: neither Locust's percentiles nor the harness's histogram hold one for it.
    assert open_entry["num_none_requests"] == open_failures
    assert timed(open_.report) == open_entry["num_requests"] - open_failures


@pytest.mark.slow
def test_a_kafka_delivery_holds_its_arrival_until_the_broker_answers(runs):
    run = runs["kafka"]
    assert run.returncode == 0, run.log[-4000:]
    (entry,) = run.stats
    assert (entry["method"], entry["name"]) == ("KAFKA", "produce events")
    # The broker froze: arrivals went on, a cap's worth of messages waited for their acks, and the rest were dropped
    # under the name the deliveries use.
    assert [(f["Method"], f["Name"], f["Error"]) for f in run.failures] == [("KAFKA", "produce events", "dropped: overloaded")]
    requests, failures, slow = counted(run.report)
    in_pause = counted(run.report, pause_seconds(run.report))
    assert (requests, failures) == (entry["num_requests"], entry["num_failures"])
    assert entry["num_none_requests"] == failures  # every failure here is a drop, and a drop has no latency
    # produce() returns at once, so only a slot held until the ack can fill the cap: the drops prove the hold.
    assert in_pause[1] > KAFKA_CAP, in_pause
    # Deliveries are timed from their arrival: the held ones show the freeze, and the cap kept them fewer than the drops.
    assert 1 <= slow < in_pause[1], (slow, in_pause)


# -- distributed: the rate is the whole load's -------------------------------------------------------------------
DISTRIBUTED = HEADER + """
from chaos_events.locust_plugin.arrivals import OpenModelUser, constant_rate
from locust import FastHttpUser, task


class Api(OpenModelUser, FastHttpUser):
    arrivals = constant_rate(60)
    max_concurrency = 40
    fixed_count = 4

    @task
    def visit(self):
        self.client.get("/")
"""
RATE, GENERATORS, MAX_CONCURRENCY = 60, 4, 40


@pytest.mark.slow
def test_master_and_two_workers_share_one_rate(tmp_path):
    procs = Processes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    (tmp_path / "lf.py").write_text(DISTRIBUTED)
    port = free_port()
    try:
        url, _ = http_server(procs, tmp_path)
        master = procs.start([LOCUST, "-f", "lf.py", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                              str(port), "--expect-workers", "2", "--headless", "-u", "4", "-r", "100", "--run-time", "10s",
                              "--host", url, "--chaos-metrics-port", "0", "--json-file", "stats"],
                             log=tmp_path / "master.log", cwd=tmp_path, env=env)
        workers = [procs.start([LOCUST, "-f", "lf.py", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                               log=tmp_path / f"worker{i}.log", cwd=tmp_path, env=env) for i in (1, 2)]
        for proc in (master, *workers):
            proc.wait(timeout=90)
    finally:
        procs.close()
    master_log = (tmp_path / "master.log").read_text()
    assert master.returncode == 0, master_log[-4000:]
    (entry,) = json.loads((tmp_path / "stats.json").read_text())
    duration = entry["last_request_timestamp"] - entry["start_time"]  # Locust's own measure of the run
    expected = RATE * duration
    # Tolerance: each generator's count over an interval is within 1 of its share (GENERATORS in all), plus 3% for
    # the spread of the workers' starts and stops (spawn and stop messages) and of the two timestamps Locust keeps.
    # One worker's share only would be half the load, each worker at the full rate double: both far outside.
    assert abs(entry["num_requests"] - expected) <= GENERATORS + 0.03 * expected, (entry["num_requests"], duration)
    assert entry["num_failures"] == 0
    # Each worker carried its half: Locust put 2 of the 4 generators on each.
    shares = []
    for i in (1, 2):
        text = (tmp_path / f"worker{i}.log").read_text()
        found = re.findall(r"open model Api: (\d+) arrivals, 0 dropped", text)
        assert len(found) == 1, text[-3000:]
        shares.append(int(found[0]))
    assert all(abs(share - entry["num_requests"] / 2) <= 2 + 0.05 * entry["num_requests"] for share in shares), shares
    # An arrival counted but never reported was in flight when the stop ended it, so there are at most max_concurrency
    # of them (here a few: those that came due while Locust's own stop blocked the hub, more on a loaded machine).
    assert 0 <= sum(shares) - entry["num_requests"] <= MAX_CONCURRENCY, (shares, entry["num_requests"])


# -- bad settings ------------------------------------------------------------------------------------------------------
BAD = HEADER + """
from chaos_events.locust_plugin.arrivals import OpenModelUser, constant_rate, stepped
from locust import FastHttpUser, task


class NegativeRate(OpenModelUser, FastHttpUser):
    arrivals = constant_rate(-5)

    @task
    def visit(self):
        self.client.get("/")


class ZeroCap(OpenModelUser, FastHttpUser):
    arrivals = constant_rate(10)
    max_concurrency = 0

    @task
    def visit(self):
        self.client.get("/")


class BadStage(OpenModelUser, FastHttpUser):
    arrivals = stepped([(30, 50), (0, 100)])

    @task
    def visit(self):
        self.client.get("/")


class WrongOrder(FastHttpUser, OpenModelUser):
    arrivals = constant_rate(10)

    @task
    def visit(self):
        self.client.get("/")
"""


def test_bad_settings_exit_2_with_every_message_before_any_load(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    procs = Processes()
    try:
        proc = procs.start([LOCUST, "-f", "bad.py", "--headless", "-u", "4", "--run-time", "5s", "--host", "http://127.0.0.1:9",
                            "--chaos-metrics-port", "0"], log=tmp_path / "bad.log", cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        proc.wait(timeout=60)
    finally:
        procs.close()
    log = (tmp_path / "bad.log").read_text()
    assert proc.returncode == 2, log
    assert "Traceback" not in log and "Ramping to" not in log, log
    assert [line for line in log.splitlines() if line.startswith("chaos-events: ")] == [
        "chaos-events: bad.py: NegativeRate.arrivals: constant_rate(rate_per_s): expected a number of arrivals per "
        "second > 0, got -5",
        "chaos-events: bad.py: ZeroCap.max_concurrency: expected a whole number >= 1 (the most requests in flight at "
        "once, for the whole load), got 0",
        "chaos-events: bad.py: BadStage.arrivals: stepped stages[1]: duration_s must be a number of seconds > 0, got 0",
        "chaos-events: bad.py: WrongOrder: OpenModelUser must come first among the bases, e.g. class WrongOrder"
        "(OpenModelUser, FastHttpUser), so that it sets up the client and replaces the task loop",
    ]
