"""Benchmark 3: how exactly the timeline keeps its clock while the load generator saturates its core.

A scenario with 20 short `pause` faults (SIGSTOP/SIGCONT of a `sleep` process this benchmark starts: the cheapest
real fault) runs during a FastHttpUser run that keeps core 0 busy. Skew = the INJECTED event's run time minus the
planned `at` (and REVERTED minus `at + for`), read from the run's chaos-report.json. The event is recorded after the
inject call returns, so the skew includes the inject itself (sending the signal and seeing the process stopped).
"""
from __future__ import annotations

import json

from .common import (LOAD_CORE, csv_aggregate, free_port, harness_args, locust_argv, make_result, nginx, percentile,
                     run_locust, scenario_yaml, sleeper, workdir)

NAME = "fault_timing"
TITLE = "Fault injection skew p99 (saturated load core)"
GOAL = 50.0
GOAL_OP = "<="
USERS = 10


def run(quick: bool = False) -> dict:
    count, first, step, length = (10, 2.0, 0.45, 0.2) if quick else (20, 3.0, 0.6, 0.3)
    plan = [(first + i * step, length) for i in range(count)]
    run_s = int(first + count * step + 2)
    with workdir(NAME) as d, nginx() as host, sleeper(d) as (_proc, pidfile):
        scenario = d / "timing.yml"
        scenario.write_text(scenario_yaml("bench-fault-timing", pidfile, host + "/", plan))
        prefix = d / "load"
        argv = locust_argv("bench/_lf_http.py", host, USERS, f"{run_s}s",
                           ["--csv", str(prefix), *harness_args(d, scenario, metrics_port=free_port())])
        code, cpu = run_locust(argv, LOAD_CORE, timeout=run_s + 60, env={"BENCH_HARNESS": "1"}, log=d / "locust.log")
        report = d / "reports" / "chaos-report.json"
        if not report.exists():
            raise RuntimeError(f"no chaos-report.json (locust exit {code}): {(d / 'locust.log').read_text()[-800:]}")
        record = json.loads(report.read_text())["record"]
        load = csv_aggregate(prefix)
    inject_skew, revert_skew, failed = [], [], []
    for event in record["events"]:
        index = int(event["fault_id"][1:].split("#")[0])
        at_s, for_s = plan[index]
        if event["kind"] == "injected":
            inject_skew.append((event["t"] - at_s) * 1000)
        elif event["kind"] == "reverted":
            revert_skew.append((event["t"] - at_s - for_s) * 1000)
        else:
            failed.append(event)
    if len(inject_skew) != count:
        raise RuntimeError(f"{len(inject_skew)} of {count} faults injected; other events: {failed[:3]}")
    p99 = percentile(inject_skew, 99)
    ms = lambda xs, p: round(percentile(xs, p), 2)  # noqa: E731
    return make_result(
        NAME, TITLE, round(p99, 2), "ms", GOAL, GOAL_OP,
        limited_by=("the timeline greenlet wakes on gevent's hub, so a due step waits for the running greenlet to yield; "
                    "the skew also contains the inject itself (signal + polling /proc for the stopped state every 10 ms)"),
        details={"inject_skew_ms": {"p50": ms(inject_skew, 50), "p99": ms(inject_skew, 99), "max": round(max(inject_skew), 2),
                                    "min": round(min(inject_skew), 2)},
                 "revert_skew_ms": {"p50": ms(revert_skew, 50), "p99": ms(revert_skew, 99),
                                    "max": round(max(revert_skew), 2)} if revert_skew else None,
                 "faults": count, "fault": "pause of a sleep process", "load_rps": round(load["rps"]),
                 "load_cpu_s": round(cpu, 2), "run_s": run_s, "users": USERS, "other_events": failed,
                 "pinning": "locust on core 0 (saturated), nginx on core 1"},
    )
