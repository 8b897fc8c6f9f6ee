"""Distributed integrity against the real demo platform: a Locust master and its workers, each a process of its own.

What must hold (issue #14, item 6):
- a worker killed mid-run (SIGKILL, so it sends nothing more) is declared lost by the master once Locust's heartbeat
  gives up on it (1 s beats, liveness 3); its requests after that are missing, so the verdict must not pass on the
  partial data: exit code 6 (INCOMPLETE), the headline says which worker was lost and when, and so do the JSON,
  JUnit and Markdown reports;
- a worker that joins while a `bad_payloads` data fault is active takes part in it: the master re-sends the active
  data faults on `worker_connect` (distributed.WorkerBooks), and the late worker's own log shows it sending bad
  payloads, every one refused; the fault's rate is shared by the workers there are (also after a loss).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos_events.verdict.escape import md_inline
from tests.helpers import free_port, stop_group
from tests.integration.test_distributed import lines_matching, start

pytestmark = pytest.mark.slow

RUN_TIME = "25s"
MASTER_TIMEOUT_S = 150
WAIT_S = 60            # for a line to appear in a log
KILL_AFTER_INJECT_S = 6.0   # the fault is injected at t=3s: the kill lands at t≈9s
LOST_BY_S = 15.0            # the kill plus heartbeat liveness (~3 s) plus the master's once-a-second look, with slack
INJECT_LINE = r"^t=([\d.]+)s inject bad_payloads api "

SCENARIO = """\
name: distributed-integrity
description: bad payloads to the demo API while workers come and go
targets:
  api: {{endpoint: "{api}"}}
faults:
  - {{at: 3s, for: 15s, fault: bad_payloads, target: api, rate_per_s: 20, kinds: [invalid-json, wrong-type]}}
slos:
  - {{name: bad-payloads-rejected, metric: data_rejected, max_accepted: 0}}
  - {{name: good-traffic-ok, metric: error_rate, during: all, max: 50%, endpoints: "POST /api/events"}}
settings:
  recovery_window: 5s
"""


class Cluster:
    """A master and its workers in tmp_path; every process is ended by its pid on close, even when a test fails."""

    def __init__(self, platform, tmp_path: Path, expect_workers: int):
        self.tmp = tmp_path
        self.out = tmp_path / "reports"
        scenario = tmp_path / "integrity.yml"
        scenario.write_text(SCENARIO.format(api=platform.api_url))
        self.master_port = free_port()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **platform.env()}
        common = ["-f", "locustfiles/platform.py", "--host", platform.api_url,
                  "--kafka-bootstrap", platform.kafka_bootstrap]
        self.master_args = [*common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                            str(self.master_port), "--expect-workers", str(expect_workers), "--headless", "-u", "6",
                            "-r", "6", "--run-time", RUN_TIME, "--chaos-plan", str(scenario), "--chaos-report-dir",
                            str(self.out), "--chaos-journal", str(self.out / "j.json")]
        self.worker_args = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(self.master_port)]
        self.procs: dict[str, subprocess.Popen] = {}

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def text(self, name: str) -> str:
        return self.log(name).read_text()

    def launch(self, name: str) -> subprocess.Popen:
        args = self.master_args if name == "master" else self.worker_args
        self.procs[name] = start(args, self.log(name), self.env)
        return self.procs[name]

    def wait_for(self, name: str, pattern: str, timeout_s: float = WAIT_S) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(name), re.MULTILINE)
            if found:
                return found
            if self.procs["master"].poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"no {pattern!r} in {name}'s log within {timeout_s}s:\n{self.text(name)[-4000:]}\n"
                    f"--- master:\n{self.text('master')[-4000:]}")

    def wait_master(self) -> int:
        try:
            return self.procs["master"].wait(timeout=MASTER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the master did not finish within {MASTER_TIMEOUT_S}s:\n{self.text('master')[-4000:]}")

    def wait_workers(self, names) -> None:
        for name in names:
            try:
                self.procs[name].wait(timeout=30)  # a worker quits when the master tells it to
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still runs 30 s after the master quit:\n{self.text(name)[-3000:]}")

    def close(self) -> None:
        for proc in self.procs.values():
            stop_group(proc)

    def report(self) -> dict:
        return json.loads((self.out / "chaos-report.json").read_text())


@pytest.fixture
def cluster_of(fresh_platform, tmp_path):
    made = []

    def make(expect_workers: int) -> Cluster:
        made.append(Cluster(fresh_platform, tmp_path, expect_workers))
        return made[-1]

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


def started_here(log: str) -> list[float]:
    """The rates at which a process started the data fault f0#1, in order (the worker-side INFO line)."""
    return [float(m) for m in re.findall(r"chaos-events: data fault f0#1 started here: bad payloads to \S+ at "
                                         r"([\d.]+)/s", log)]


def sent_here(log: str) -> list[dict[str, int]]:
    """What a process said it sent when it stopped the data fault f0#1: {'sent': n, 'rejected_4xx': n, ...}."""
    out = []
    for total, counts in re.findall(r"chaos-events: data fault f0#1 stopped here: sent (\d+) bad payloads \(([^)]*)\)",
                                    log):
        out.append({"sent": int(total), **{k: int(v) for k, v in (p.split("=") for p in counts.split())}})
    return out


def test_a_killed_worker_makes_the_run_incomplete(cluster_of):
    cluster = cluster_of(2)
    cluster.launch("master")
    cluster.launch("worker1")
    victim = cluster.launch("worker2")
    inject_t = float(cluster.wait_for("master", INJECT_LINE).group(1))
    time.sleep(KILL_AFTER_INJECT_S)
    os.kill(victim.pid, signal.SIGKILL)  # our own child, by its pid: it gets no chance to say goodbye
    victim.wait(timeout=10)
    code = cluster.wait_master()
    cluster.wait_workers(["worker1"])
    master_log = cluster.text("master")

    assert code == 6, master_log[-6000:]
    assert "chaos verdict: FAIL (exit code 6)" in master_log, master_log[-6000:]
    warned = lines_matching(master_log, r"chaos-events: WARNING: worker \S+ lost at t=[\d.]+s")
    assert len(warned) == 1, master_log[-6000:]

    report = cluster.report()
    verdict = report["verdict"]
    assert report["result"] == "FAIL" and verdict["exit_code"] == 6, verdict
    lost = verdict["summary"]["workers_lost"]
    assert len(lost) == 1, lost
    # killed at inject_t + 6 s; declared lost after the heartbeat's liveness ran out, never before the kill
    assert inject_t + KILL_AFTER_INJECT_S <= lost[0]["t"] <= inject_t + LOST_BY_S, (inject_t, lost)
    assert "data incomplete: worker " in verdict["headline"], verdict["headline"]
    assert f"worker {lost[0]['worker']} lost at t={lost[0]['t']:.1f}s (its requests after that are missing)" \
        in verdict["headline"], verdict["headline"]
    gone = f"worker {lost[0]['worker']} lost at t={lost[0]['t']:.1f}s"
    assert f"DATA INCOMPLETE {gone}: its requests after that are missing" in master_log, master_log[-6000:]

    # JUnit: CI sees a failing testcase, not a green suite over partial data.
    junit = ET.fromstring((cluster.out / "chaos-report.xml").read_text())
    suite = junit.find("testsuite")
    case = suite.find("testcase[@name='data complete']")
    assert case is not None, ET.tostring(junit, encoding="unicode")
    failure = case.find("failure")
    assert failure is not None and f"worker {lost[0]['worker']} lost" in failure.get("message"), ET.tostring(case)
    assert int(suite.get("failures")) >= 1, suite.attrib

    # The survivor took over the whole rate of the data fault once the other was declared lost.
    assert started_here(cluster.text("worker1")) == [10.0, 20.0], cluster.text("worker1")[-3000:]

    markdown = (cluster.out / "chaos-report.md").read_text()
    assert "- **Result:** **FAIL** (exit code 6: the experiment is incomplete" in markdown, markdown[:2000]
    assert f"- **Why:** {md_inline(verdict['headline'])}\n" in markdown, markdown[:2000]
    assert md_inline(f"data incomplete: {gone}") in markdown, markdown[:2000]


def test_b_a_late_worker_takes_part_in_an_active_data_fault(cluster_of):
    cluster = cluster_of(1)
    cluster.launch("master")
    cluster.launch("worker1")
    cluster.wait_for("master", INJECT_LINE)
    cluster.wait_for("worker1", r"data fault f0#1 started here")
    cluster.launch("worker2")  # joins while the fault (t=3s..18s) is active
    cluster.wait_for("worker2", r"data fault f0#1 started here")
    code = cluster.wait_master()
    cluster.wait_workers(["worker1", "worker2"])
    master_log, early, late = cluster.text("master"), cluster.text("worker1"), cluster.text("worker2")

    report = cluster.report()
    assert report["verdict"]["summary"]["workers_lost"] == [], report["verdict"]["summary"]
    assert code == report["verdict"]["exit_code"] == 0, (report["verdict"]["headline"], master_log[-6000:])
    events = [(e["kind"], e["fault_id"]) for e in report["record"]["events"]]
    assert events == [("injected", "f0#1"), ("reverted", "f0#1")], events

    # worker1 started alone with the whole rate, then took half of it when worker2 joined; worker2 got its half.
    assert started_here(early) == [20.0, 10.0], early[-3000:]
    assert started_here(late) == [10.0], late[-3000:]
    # ...and the late worker really sent bad payloads, every one refused by the API (it stops them at the revert).
    for name, text in (("worker1", early), ("worker2", late)):
        stops = sent_here(text)
        assert len(stops) == 1, (name, text[-3000:])
        assert stops[0]["sent"] > 0 and stops[0]["sent"] == stops[0]["rejected_4xx"], (name, stops)
    # The master's record has the bad payloads of both workers: more than worker1 alone could have sent.
    chaos = sum(w["count"] for w in report["record"]["windows"] if w["name"].startswith("[chaos] "))
    assert chaos >= sent_here(early)[0]["sent"] + sent_here(late)[0]["sent"], chaos
