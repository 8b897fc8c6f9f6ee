"""Distributed mode against the real demo platform: one Locust master and two workers, each a process of its own.

What must hold (ARCHITECTURE section 7): the timeline runs on the master only, so the fault is injected exactly once
(the workers only print the master's broadcast); the per-second windows the workers ship as deltas add up, on the
master, to exactly Locust's own totals (counts, failures and the bucketed latency histogram, per endpoint); the
master judges the SLOs, writes the reports and sets the exit code.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import LOCUST, ROOT, free_port, stop_group

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "tolerated-kafka-latency.yml"
RUN_TIME = "25s"
MASTER_TIMEOUT_S = 150
FAULT = ("latency", "kafka-link")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the master's /metrics; {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([LOCUST, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def lines_matching(text: str, pattern: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(pattern, line)]


def window_totals(report: dict) -> dict[tuple[str, str], dict]:
    """Per endpoint: requests, failures and the latency histogram ({ms: count}), summed over the report's windows."""
    totals: dict[tuple[str, str], dict] = {}
    for w in report["record"]["windows"]:
        t = totals.setdefault((w["method"], w["name"]), {"requests": 0, "failures": 0, "latency_ms": {}})
        t["requests"] += w["count"]
        t["failures"] += w["failures"]
        for bucket, n in w["latency_ms"].items():
            t["latency_ms"][int(bucket)] = t["latency_ms"].get(int(bucket), 0) + n
    return totals


def locust_totals(stats: list[dict]) -> dict[tuple[str, str], dict]:
    """The same, from Locust's own `--json-file` stats (the master's merged entries)."""
    return {(e["method"], e["name"]): {"requests": e["num_requests"], "failures": e["num_failures"],
                                       "latency_ms": {int(k): v for k, v in e["response_times"].items()}}
            for e in stats}


def test_master_and_two_workers(fresh_platform, tmp_path):
    platform = fresh_platform
    out = tmp_path / "reports"
    master_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **platform.env()}
    common = ["-f", "locustfiles/platform.py", "--host", platform.api_url, "--kafka-bootstrap", platform.kafka_bootstrap]
    master_args = [*common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                   "--expect-workers", "2", "--headless", "-u", "10", "-r", "10", "--run-time", RUN_TIME,
                   "--chaos-plan", str(SCENARIO), "--chaos-report-dir", str(out), "--chaos-metrics-port", str(metrics_port),
                   "--chaos-journal", str(out / "j.json"), "--json-file", str(tmp_path / "locust-stats")]
    worker_args = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    logs = {"master": tmp_path / "master.log", "worker1": tmp_path / "worker1.log", "worker2": tmp_path / "worker2.log"}
    procs: dict[str, subprocess.Popen] = {}
    seen_workers, seen_active, seen_injections = set(), False, set()
    try:
        procs["master"] = start(master_args, logs["master"], env)
        procs["worker1"] = start(worker_args, logs["worker1"], env)
        procs["worker2"] = start(worker_args, logs["worker2"], env)
        deadline = time.monotonic() + MASTER_TIMEOUT_S
        # Watch the master's exporter while the run goes on: both workers connected, the fault visible.
        while procs["master"].poll() is None and time.monotonic() < deadline:
            metrics = scrape(metrics_port)
            if metrics:
                seen_workers.add(metrics.get(("locust_workers", ()), 0.0))
                seen_injections.add(metrics.get(("chaos_fault_injections_total", ()), 0.0))
                labels = (("fault", FAULT[0]), ("target", FAULT[1]))
                seen_active |= metrics.get(("chaos_fault_active", labels)) == 1.0
            time.sleep(0.5)
        if procs["master"].poll() is None:
            pytest.fail(f"the master did not finish within {MASTER_TIMEOUT_S}s:\n{logs['master'].read_text()[-4000:]}")
        for name in ("worker1", "worker2"):
            try:
                procs[name].wait(timeout=30)  # a worker quits when the master tells it to
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still runs 30 s after the master quit:\n{logs[name].read_text()[-3000:]}")
    finally:
        for proc in procs.values():
            stop_group(proc)

    master_log = logs["master"].read_text()
    worker_logs = {name: logs[name].read_text() for name in ("worker1", "worker2")}
    assert procs["master"].returncode == 0, master_log[-6000:]
    assert "chaos verdict: PASS (exit code 0)" in master_log, master_log[-6000:]
    assert 2.0 in seen_workers, f"the exporter never showed 2 workers: {seen_workers}"
    assert seen_active, "chaos_fault_active never showed the fault while it was active"
    assert seen_injections <= {0.0, 1.0} and 1.0 in seen_injections, seen_injections

    # Injected exactly once, by the master; each worker printed the master's broadcast and did nothing itself.
    assert len(lines_matching(master_log, r"^t=[\d.]+s inject latency kafka-link ")) == 1, master_log[-6000:]
    assert len(lines_matching(master_log, r"^t=[\d.]+s revert latency kafka-link ")) == 1, master_log[-6000:]
    assert len(lines_matching(master_log, r"toxic chaos\.latency\.kafka-link")) == 1, master_log[-6000:]
    for name, text in worker_logs.items():
        assert len(lines_matching(text, r"chaos-events: t=[\d.]+s injected latency kafka-link$")) == 1, (name, text[-3000:])
        assert len(lines_matching(text, r"chaos-events: t=[\d.]+s reverted latency kafka-link$")) == 1, (name, text[-3000:])
        assert not lines_matching(text, r"^t=[\d.]+s (inject|revert) |toxic chaos\.|chaos verdict"), (name, text[-3000:])

    report = json.loads((out / "chaos-report.json").read_text())
    assert report["result"] == "PASS" and report["verdict"]["exit_code"] == 0, report["verdict"]
    assert [(e["kind"], e["fault_id"]) for e in report["record"]["events"]] == [("injected", "f0#1"), ("reverted", "f0#1")]
    acknowledged = {r["name"]: r for r in report["verdict"]["results"]}["no-lost-writes"]["details"]["ledger"][0]
    assert acknowledged["acknowledged"] > 100, acknowledged  # the workers' ledger deltas reached the master

    # The record's windows (what the exporter, the verdict and the reports read) equal Locust's own totals exactly.
    ours = window_totals(report)
    stats = json.loads((tmp_path / "locust-stats.json").read_text())
    theirs = locust_totals(stats)
    assert sum(t["requests"] for t in theirs.values()) > 500, theirs
    assert set(ours) == set(theirs)
    for key in sorted(theirs):
        assert ours[key] == theirs[key], f"{key}: record {ours[key]} != locust {theirs[key]}"
