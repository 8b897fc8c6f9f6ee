"""Benchmark 1b: what the harness costs per request, in CPU instructions (deterministic, unlike harness_overhead's
req per CPU-second, which this shared 2-core VM cannot narrow to a 3% goal: 30 pairs gave a 95% interval 0.938-1.014).

Locust with 1 user runs `bench/_lf_http.py` against nginx under `valgrind --tool=callgrind` until exactly N requests
are done (BENCH_STOP_AFTER=N: the user stops and quits the runner; `--run-time` is an hour so it never ends first).
The instruction count of the whole Locust process is read from callgrind's `totals:` line. Startup and shutdown
cancel by difference: instructions per request = (I(N2) - I(N1)) / (N2 - N1), for plain Locust and for the harness
(BENCH_HARNESS=1: `import chaos_events`, a ledger ack per 200, and the harness flags: plan, exporter, watchdog). The
figure is plain / harness instructions per request (>= 0.97: the harness adds at most ~3%).

The idle scenario here has NO probe (unlike harness_overhead's, which probes every 1 s): work that runs per wall
second scales with valgrind's ~50x stretched wall time, not with requests, so a probe would be charged to the
requests. What is counted is the per-request hot path: the recorder's request listener and the ledger ack. The
watchdog is a separate process and is not traced (no --trace-children). Locust's own per-second work (stats ticks,
the gevent loop) is in both sides and adds a little run-to-run noise (about 0.5% of a run's total).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from .common import free_port, harness_args, locust_argv, make_result, nginx, run_locust, scenario_yaml, sleeper, workdir

NAME = "harness_instructions"
TITLE = "Harness overhead (instructions per request under callgrind, plain / harness on)"
GOAL = 0.97
VALGRIND = ("valgrind", "--tool=callgrind", "--cache-sim=no", "--branch-sim=no", "--collect-atstart=yes")
_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)
_SUMMARY = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)
_AGGREGATED = re.compile(r"^\s*Aggregated\s+(\d+)\s", re.MULTILINE)


def callgrind_total(text: str) -> int:
    """The instruction count (first event, Ir) of a callgrind.out file: its `totals:` line, else its `summary:`."""
    match = _TOTALS.search(text) or _SUMMARY.search(text)
    if match is None:
        raise ValueError("no 'totals:' or 'summary:' line in the callgrind output")
    return int(match.group(1))


def per_request(n1: int, i1: float, n2: int, i2: float) -> float:
    """Instructions per request from two runs of n1 < n2 requests: the fixed startup and shutdown cost cancels."""
    if n2 <= n1:
        raise ValueError(f"need n2 > n1, got n1={n1} n2={n2}")
    return (i2 - i1) / (n2 - n1)


def one_run(d: Path, host: str, label: str, n: int, scenario: Path | None) -> int:
    """Instructions of one Locust process that sends exactly `n` requests (1 user) under callgrind."""
    out = d / f"{label}-{n}.callgrind"
    env = {"BENCH_HARNESS": "1" if scenario else "0", "BENCH_STOP_AFTER": str(n)}
    extra = []
    if scenario is not None:
        extra = harness_args(d / f"{label}-{n}-run", scenario, metrics_port=free_port())
    argv = [*VALGRIND, f"--callgrind-out-file={out}", *locust_argv("bench/_lf_http.py", host, 1, "3600s", extra)]
    code, _cpu = run_locust(argv, None, timeout=600, env=env, log=d / f"{label}-{n}.log")
    # The idle plan's fault (an hour away) is never injected, so a harness run ends INCOMPLETE (6) by design.
    if code not in (0, 6 if scenario else 0) or not out.exists():
        raise RuntimeError(f"{label} run of {n} requests exited {code}; see its log:\n"
                           + (d / f"{label}-{n}.log").read_text()[-2000:])
    requests = printed_request_count((d / f"{label}-{n}.log").read_text())
    if requests != n:
        raise RuntimeError(f"{label} run sent {requests} requests, expected exactly {n}")
    return callgrind_total(out.read_text())


def printed_request_count(log: str) -> int:
    """The request count of the first `Aggregated` row of Locust's printed summary (the request table; its CSV is
    written on a 1 s timer and can lag the end of a run that quits itself)."""
    match = _AGGREGATED.search(log)
    if match is None:
        raise ValueError("no 'Aggregated' row in Locust's printed summary")
    return int(match.group(1))


def skipped(reason: str) -> dict:
    return make_result(NAME, TITLE, None, "ratio", GOAL, ">=", limited_by=f"not measured: {reason}")


def run(quick: bool = False) -> dict:
    if not shutil.which("valgrind"):
        return skipped("valgrind is not installed (apt-get install -y valgrind)")
    # Each count runs `repeats` times; the mean of each cancels part of Locust's per-wall-second noise.
    n1, n2, repeats = (300, 1500, 1) if quick else (1000, 7000, 2)
    counts: dict[str, dict[int, list[int]]] = {"plain": {n1: [], n2: []}, "harness": {n1: [], n2: []}}
    with workdir(NAME) as d, nginx() as host, sleeper(d) as (_proc, pidfile):
        scenario = d / "idle.yml"
        scenario.write_text(scenario_yaml("bench-idle-noprobe", pidfile, None, [(3600.0, 10.0)]))
        for _ in range(repeats):
            for n in (n1, n2):  # interleaved, so drift on the machine touches both sides alike
                counts["plain"][n].append(one_run(d, host, "plain", n, None))
                counts["harness"][n].append(one_run(d, host, "harness", n, scenario))
    return result(counts, n1, n2)


def result(counts: dict[str, dict[int, list[int]]], n1: int, n2: int) -> dict:
    """The figure from the instruction totals of every run: {side: {request count: [total per repeat]}}."""
    mean = {side: {n: sum(v) / len(v) for n, v in by_n.items()} for side, by_n in counts.items()}
    plain = per_request(n1, mean["plain"][n1], n2, mean["plain"][n2])
    harness = per_request(n1, mean["harness"][n1], n2, mean["harness"][n2])
    ratio = round(plain / harness, 4)
    added = harness - plain
    # One estimate per repeat (its own n1 and n2 runs): how far apart they lie is the measurement's noise.
    spread = {side: [round(per_request(n1, a, n2, b)) for a, b in zip(by_n[n1], by_n[n2])]
              for side, by_n in counts.items()}
    return make_result(
        NAME, TITLE, ratio, "ratio", GOAL, ">=",
        limited_by=(f"the harness adds {added:,.0f} instructions per request ({added / plain:+.1%}) to Locust's "
                    f"{plain:,.0f} (per repeat: plain {spread['plain']}, harness {spread['harness']}); no probe "
                    "here, so this is per-request Python work spread over the interpreter (no single C hot spot)"),
        details={"plain_instr_per_req": round(plain), "harness_instr_per_req": round(harness),
                 "harness_added_instr_per_req": round(added), "instr_per_req_per_repeat": spread,
                 "totals": {side: {str(n): v for n, v in by_n.items()} for side, by_n in counts.items()},
                 "n1": n1, "n2": n2, "repeats": len(counts["plain"][n1]), "users": 1,
                 "locustfile": "bench/_lf_http.py", "valgrind": " ".join(VALGRIND),
                 "scenario": "idle: one pause an hour away, no probe, exporter on",
                 "formula": "(I(n2) - I(n1)) / (n2 - n1), means over repeats"},
    )
