"""Benchmark: phase boundaries do not bias the per-phase figures. On an untouched target (the single fault pauses a
`sleep` process this benchmark starts; nginx is never touched), the fault and recovery phases' throughput, error
rate and p95, as the verdict itself computes them (chaos-report.json `phase_stats`: rps_change, error_rate_change,
p95_ratio), must match the baseline. 10 runs (quick: 3) of FastHttpUser against nginx, a pause at 6 s for 6 s.

Figure: the worst absolute rps_change of the fault and recovery phases over all runs, in %. The goal is judged on
throughput; error-rate change and p95 ratio are reported in details (p95 is bucketed: Locust's 1 ms buckets under
100 ms, so a 1-bucket move at a few ms is tens of percent and says nothing about the phase edges).
"""
from __future__ import annotations

import json

from .common import (LOAD_CORE, free_port, harness_args, locust_argv, make_result, nginx, run_locust, scenario_yaml,
                     sleeper, workdir)

NAME = "phase_edges"
TITLE = "Phase-boundary bias (worst |fault/recovery rps change| on an untouched target)"
GOAL = 1.5
GOAL_OP = "<="
USERS = 10
FAULT_AT_S, FAULT_FOR_S, RUN_S = 6.0, 6.0, 18
PHASES = ("fault", "recovery")


def one_run(d, host: str, pidfile, index: int) -> dict:
    rd = d / f"run{index}"
    rd.mkdir()
    scenario = rd / "edges.yml"
    scenario.write_text(scenario_yaml("bench-phase-edges", pidfile, host + "/", [(FAULT_AT_S, FAULT_FOR_S)]))
    argv = locust_argv("bench/_lf_http.py", host, USERS, f"{RUN_S}s", harness_args(rd, scenario, metrics_port=free_port()))
    code, cpu = run_locust(argv, LOAD_CORE, timeout=RUN_S + 60, env={"BENCH_HARNESS": "1"}, log=rd / "locust.log")
    report = rd / "reports" / "chaos-report.json"
    if not report.exists():
        raise RuntimeError(f"run {index}: no chaos-report.json (locust exit {code}): {(rd / 'locust.log').read_text()[-800:]}")
    ps = json.loads(report.read_text())["phase_stats"]
    out = {"exit_code": code, "cpu_s": round(cpu, 2), "baseline_rps": ps["baseline"]["rps"],
           "baseline_error_rate": ps["baseline"]["error_rate"], "baseline_p95_ms": ps["baseline"]["p95_ms"]}
    for phase in PHASES:
        row = ps.get(phase)
        if row is None:
            raise RuntimeError(f"run {index}: no {phase} phase in the report (phases: {list(ps)})")
        out[phase] = {"rps": row["rps"], "duration_s": row["duration_s"], "requests": row["requests"],
                      "rps_change_pct": None if row["rps_change"] is None else round(row["rps_change"] * 100, 3),
                      "error_rate_change_pct": None if row["error_rate_change"] is None
                      else round(row["error_rate_change"] * 100, 4),
                      "p95_ms": row["p95_ms"], "p95_ratio": row["p95_ratio"]}
    return out


def run(quick: bool = False) -> dict:
    runs_n = 3 if quick else 10
    with workdir(NAME) as d, nginx() as host, sleeper(d) as (_proc, pidfile):
        runs = [one_run(d, host, pidfile, i) for i in range(runs_n)]
    rps = {p: [r[p]["rps_change_pct"] for r in runs] for p in PHASES}
    err = {p: [r[p]["error_rate_change_pct"] for r in runs] for p in PHASES}
    p95 = {p: [r[p]["p95_ratio"] for r in runs] for p in PHASES}
    all_rps = [x for p in PHASES for x in rps[p]]
    all_err = [x for p in PHASES for x in err[p]]
    value = None if any(x is None for x in all_rps) else round(max(abs(x) for x in all_rps), 3)
    worst_err = None if any(x is None for x in all_err) else round(max(abs(x) for x in all_err), 4)
    if value is not None and worst_err is not None and worst_err > GOAL:
        value = max(value, worst_err)  # the goal covers error rate too (in points); never hide a miss there
    return make_result(
        NAME, TITLE, value, "%", GOAL, GOAL_OP,
        limited_by=('baseline low: stats.active_duration counts the whole first wall second (traffic_extent starts at t_of of the first second with traffic) though load starts mid-second and ramps up, so baseline rps is understated and fault/recovery read high (16 of 20 positive); the recovery phase reaches the run end, whose partial last second also counts as a full active second; plus load-core CPU contention from other work (Locust got 14.9-17.9 CPU-s of 18 s); goal judged on rps change (and error rate), p95 ratio reported only (1 ms buckets)'),
        details={"rps_change_pct": rps, "error_rate_change_pct": err, "p95_ratio": p95,
                 "worst_abs_rps_change_pct": {p: max(abs(x) for x in rps[p] if x is not None) for p in PHASES},
                 "worst_abs_error_rate_change_pct": worst_err,
                 "p95_ratio_range": [min(x for x in p95_all if x is not None), max(x for x in p95_all if x is not None)]
                 if (p95_all := [x for p in PHASES for x in p95[p] if x is not None]) else None,
                 "runs": runs, "run_s": RUN_S, "fault": f"pause of a sleep process at {FAULT_AT_S}s for {FAULT_FOR_S}s",
                 "users": USERS, "locustfile": "bench/_lf_http.py",
                 "pinning": "locust on core 0, nginx (1 worker) on core 1"},
    )
