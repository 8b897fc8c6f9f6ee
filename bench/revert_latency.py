"""Benchmark 4: from a stop request to the fault reverted, under load.

A pause fault (SIGSTOP of a `sleep` process) is injected 1 s into a saturating FastHttpUser run and planned to last
an hour; a few seconds later this benchmark sends SIGTERM to Locust (what Ctrl-C in CI or `docker stop` does). Two
clocks, both wall time on this machine:
- observed: when /proc shows the target running again (polled every 1 ms by this process);
- recorded: the REVERTED event's wall time in the run's chaos-report.json.
The figure is the worst observed latency over the repetitions.
"""
from __future__ import annotations

import json
import signal
import time

from .common import (LOAD_CORE, harness_args, locust_argv, make_result, nginx, proc_state, scenario_yaml,
                     sleeper, start, stop, wait_with_cpu, workdir, free_port)

NAME = "revert_latency"
TITLE = "Revert latency, SIGTERM to fault reverted (worst)"
GOAL = 1.0
GOAL_OP = "<="
USERS = 10


def one(d, host, pidfile, sleeper_pid: int, index: int) -> dict:
    run = d / f"run{index}"
    scenario = d / f"revert{index}.yml"
    scenario.write_text(scenario_yaml("bench-revert", pidfile, host + "/", [(1.0, 3600.0)]))
    argv = locust_argv("bench/_lf_http.py", host, USERS, "60s", harness_args(run, scenario, metrics_port=free_port()))
    proc = start(argv, core=LOAD_CORE, env={"BENCH_HARNESS": "1", "PYTHONUNBUFFERED": "1"}, log=d / f"locust{index}.log")
    try:
        deadline = time.monotonic() + 20
        while proc_state(sleeper_pid) != "T":  # injected (after Locust's start-up and the fault's at=1s)
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the pause was never injected: {(d / f'locust{index}.log').read_text()[-800:]}")
            time.sleep(0.005)
        time.sleep(2.0)  # the load runs with the fault active
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        observed = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc_state(sleeper_pid) != "T":
                observed = time.time()
                break
            time.sleep(0.001)
        code, _ = wait_with_cpu(proc, timeout=30)
    finally:
        stop(proc)
    report = run / "reports" / "chaos-report.json"
    reverted_wall = None
    if report.exists():
        events = json.loads(report.read_text())["record"]["events"]
        reverted = [e for e in events if e["kind"] == "reverted"]
        reverted_wall = reverted[0]["wall"] if reverted else None
    return {"observed_s": None if observed is None else round(observed - sent, 4),
            "recorded_s": None if reverted_wall is None else round(reverted_wall - sent, 4), "exit_code": code}


def run(quick: bool = False) -> dict:
    reps = 1 if quick else 3
    runs = []
    with workdir(NAME) as d, nginx() as host, sleeper(d) as (sleep_proc, pidfile):
        for i in range(reps):
            runs.append(one(d, host, pidfile, sleep_proc.pid, i))
    observed = [r["observed_s"] for r in runs]
    worst = None if None in observed else max(observed)
    return make_result(
        NAME, TITLE, worst, "s", GOAL, GOAL_OP,
        limited_by=("Locust's SIGTERM handling: quitting stops the runner (users are killed), then the session "
                    "reverts; the revert waits for the hub, i.e. for the load's greenlets to be stopped"),
        details={"runs": runs, "fault": "pause of a sleep process, planned for 1 h", "signal": "SIGTERM to locust",
                 "pinning": "locust on core 0, nginx on core 1; the observer polls /proc every 1 ms"},
    )
