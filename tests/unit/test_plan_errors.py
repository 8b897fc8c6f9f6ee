"""Every way a scenario can be wrong, with the exact message the user reads (file:line field: what; allowed; got).

Each case feeds scenario text to parse_plan and compares the full list of problems, in order.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chaos_events.errors import PlanError
from chaos_events.faults import known_fault_types
from chaos_events.scenario.preflight import PreflightOptions, preflight
from chaos_events.scenario.loader import load_plan, parse_plan

KNOWN = ", ".join(known_fault_types())
METRICS = ("error_rate, latency, throughput_drop, detection_time, recovery_time, lost_writes, duplicates, "
           "alerts_fired, health_truthful, blast_radius, data_rejected")
TOP = "name, description, targets, probes, faults, slos, settings, steady_state, halt_when, on_halt, ledger"
KINDS = "process, container, proxy, directory, endpoint, host, kafka, kafka_cluster"
OVERLAP_RULE = "two faults on one target at once conflict (only proxy toxics of different types on different streams may overlap)"

# Declares one target of most kinds and one probe; lines 1-8, so a fault or SLO listed next starts at line 10.
BASE = """name: t
targets:
  host: {host: local}
  data: {directory: /tmp}
  link: {proxy: kafka}
  api: {endpoint: "127.0.0.1:8000"}
probes:
  health: {http: {url: "http://127.0.0.1:8000/health", every: 1s}}
"""


def problems(text: str, check_targets: bool = False, **kwargs) -> list[str]:
    """Every problem of a scenario, as the user reads them; `check_targets` adds the pre-run look at this machine."""
    kwargs.setdefault("environ", {})
    with pytest.raises(PlanError) as info:
        plan = parse_plan(text, "x.yml", **kwargs)
        if check_targets:
            preflight(plan, PreflightOptions(environ={}))
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


CASES = {
    # -- the file as a whole --
    "malformed YAML": ("name: t\nfaults: [\n  {at: 1s\n", [
        "x.yml:4: invalid YAML: expected ',' or '}', but got '<stream end>' (column 1); while parsing a flow mapping at line 3"]),
    "bad indentation": ("name: t\n  bad: indent\n", [
        "x.yml:2: invalid YAML: mapping values are not allowed here (column 6)"]),
    "a tab": ("name: t\nfaults:\n\t- x\n", [
        "x.yml:3: invalid YAML: found character '\\t' that cannot start any token (column 1); while scanning for the next token"]),
    "two documents": ("name: a\n---\nname: b\n", [
        "x.yml:2: invalid YAML: but found another document (column 1); expected a single document in the stream at line 1"]),
    "root is a list": ("- a\n- b\n", [
        f"x.yml:1: expected a mapping at the top level with keys: {TOP}; got a list"]),
    "root is text": ("hello\n", [
        f"x.yml:1: expected a mapping at the top level with keys: {TOP}; got 'hello'"]),
    "empty file": ("", [f"x.yml: scenario is empty; expected a mapping with keys: {TOP}"]),
    "only comments": ("# nothing here\n", [f"x.yml: scenario is empty; expected a mapping with keys: {TOP}"]),
    "missing name": ("targets: {}\n", ["x.yml:1: missing key 'name'"]),
    "name is a list": ("name: [a]\n", ["x.yml:1: 'name': expected text; got a list"]),
    "unknown top-level key": ("name: t\nslo: []\n", [
        "x.yml:2: unknown key 'slo'; expected one of: description, faults, halt_when, ledger, name, on_halt, probes, settings, slos, steady_state, targets"]),
    "duplicate top-level key": ("name: t\nname: u\n", ["x.yml:2: duplicate key 'name' (first at line 1)"]),
    # -- environment interpolation --
    "unset variable": ('name: t\ntargets:\n  d: {directory: "${SCEN_DIR}/x"}\n', [
        "x.yml:3: environment variable 'SCEN_DIR' is not set and has no default; set it or write ${SCEN_DIR:-default}"]),
    "malformed variable": ("name: ${NAME\n", [
        "x.yml:1: malformed variable reference '${NAME'; expected ${NAME} or ${NAME:-default}"]),
    # -- targets --
    "duplicate target name": ("name: t\ntargets:\n  host: {host: local}\n  host: {directory: /tmp}\n", [
        "x.yml:4 targets: duplicate key 'host' (first at line 3)"]),
    "bad targets": (
        "name: t\ntargets:\n  a: {process: {pidfile: x.pid, pid: 12}}\n  b: {vm: x}\n  c: {host: local, directory: /tmp}\n"
        "  d: {endpoint: 'db.example.com:5432'}\n  e: {kafka: {bootstrap: 127.0.0.1:9092}}\n  f: []\n"
        "  g: {process: {pid: 1}}\n  h: {container: {name: x, label: y}}\n  i: {endpoint: 'ftp://127.0.0.1/'}\n"
        "  j: {host: remote}\n  k: {process: {command: []}}\n  l: {endpoint: '127.0.0.1:99999'}\n", [
            "x.yml:3 targets.a (process): expected exactly one of: pidfile, pid, command; got: pidfile, pid",
            f"x.yml:4 targets.b: unknown target kind 'vm'; expected one of: {KINDS}",
            f"x.yml:5 targets.c: expected exactly one target kind: {KINDS}; got: host, directory",
            "x.yml:6 targets.d (endpoint): 'endpoint': host 'db.example.com' is not allowed; allowed hosts: 127.0.0.1, "
            "localhost, ::1 (add it to settings.allowed_hosts or to --chaos-allow)",
            "x.yml:7 targets.e (kafka): missing key 'topic'",
            f"x.yml:8 targets.f: expected a mapping with one target kind: {KINDS}; got a list",
            "x.yml:9 targets.g (process): 'pid': refusing to target process 1 (init)",
            "x.yml:10 targets.h (container): expected exactly one of: label, name; got: name, label",
            "x.yml:11 targets.i (endpoint): 'endpoint': expected a URL like http://127.0.0.1:8000; got 'ftp://127.0.0.1/'",
            "x.yml:12 targets.j (host): 'host': only 'local' (this machine) is supported; got 'remote'",
            "x.yml:13 targets.k (process): 'command': must not be empty",
            "x.yml:14 targets.l (endpoint): 'endpoint': expected host:port or an http:// URL; got '127.0.0.1:99999'",
        ]),
    # -- probes --
    "bad probes": (
        "name: t\nprobes:\n  a: {http: {url: x}}\n  b: {pingdom: {}}\n  c: {kafka_lag: {bootstrap: b, group: g, topic: t, every: -1s}}\n"
        "  d: {http: {url: 'http://127.0.0.1/', every: 1s, expect_status: [200, 700]}}\n", [
            "x.yml:3 probes.a (http): 'url': expected a URL like http://127.0.0.1:8000; got 'x'",
            "x.yml:3 probes.a (http): missing key 'every'",
            "x.yml:4 probes.b: unknown probe kind 'pingdom'; expected one of: http, kafka_lag, prometheus_alerts",
            "x.yml:5 probes.c (kafka_lag): 'every': must not be negative; got '-1s'",
            "x.yml:6 probes.d (http): 'expect_status': must be between 100 and 599; got 700",
        ]),
    # -- faults --
    "faults not a list": ("name: t\nfaults: {a: 1}\n", [
        "x.yml:2 faults: expected a list of faults, like [{at: 30s, for: 20s, fault: pause, target: broker}]; got a mapping"]),
    "fault not a mapping": (BASE + "faults:\n  - pause\n", [
        "x.yml:10 faults[0]: expected a mapping like {at: 30s, for: 20s, fault: pause, target: broker}; got 'pause'"]),
    "unknown fault": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: cpu_brn, target: host}\n", [
        f"x.yml:10 faults[0] (cpu_brn): unknown fault 'cpu_brn'; expected one of: {KNOWN}"]),
    "missing fault": (BASE + "faults:\n  - {at: 1s, for: 2s, target: host}\n", [
        f"x.yml:10 faults[0]: missing key 'fault'; expected one of: {KNOWN}"]),
    "unknown parameter": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: latency, target: link, latncy: 200}\n", [
        "x.yml:10 faults[0] (latency): unknown parameter 'latncy'; expected one of: jitter_ms, latency_ms, stream, toxicity",
        "x.yml:10 faults[0] (latency): missing parameter 'latency_ms'"]),
    "unknown parameter on its own line": (BASE + "faults:\n  - at: 1s\n    for: 2s\n    fault: latency\n    target: link\n"
                                          "    latency_ms: 10\n    latncy: 200\n", [
        "x.yml:15 faults[0] (latency): unknown parameter 'latncy'; expected one of: jitter_ms, latency_ms, stream, toxicity"]),
    "parameter of the wrong type": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: cpu_burn, target: host, cores: many}\n", [
        "x.yml:10 faults[0] (cpu_burn): parameter 'cores': expected a whole number; got 'many'"]),
    "parameter given twice": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: cpu_burn, target: host, cores: 1, params: {cores: 2}}\n", [
        "x.yml:10 faults[0] (cpu_burn): parameter 'cores' is given twice (inline and under 'params')"]),
    "negative at": (BASE + "faults:\n  - {at: -5s, for: 2s, fault: cpu_burn, target: host, cores: 1}\n", [
        "x.yml:10 faults[0] (cpu_burn): 'at': must not be negative; got '-5s'"]),
    "missing at and for": (BASE + "faults:\n  - {fault: cpu_burn, target: host, cores: 1}\n", [
        "x.yml:10 faults[0] (cpu_burn): missing key 'at' (when the fault starts, e.g. 30s)",
        "x.yml:10 faults[0] (cpu_burn): missing key 'for' (how long it lasts, e.g. 20s)"]),
    "zero for": (BASE + "faults:\n  - {at: 0, for: 0s, fault: cpu_burn, target: host, cores: 1}\n", [
        "x.yml:10 faults[0] (cpu_burn): 'for': must be more than zero; got '0s'"]),
    "durations that are not durations": (BASE + "faults:\n  - {at: soon, for: [1], fault: cpu_burn, target: host, cores: 1}\n", [
        "x.yml:10 faults[0] (cpu_burn): 'at': expected a number of seconds or a duration like 250ms, 30s, 2m, 1m30s, 1h; got 'soon'",
        "x.yml:10 faults[0] (cpu_burn): 'for': expected a duration like 30s; got a list"]),
    "unknown target": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: cpu_burn, target: hots, cores: 1}\n", [
        "x.yml:10 faults[0] (cpu_burn): unknown target 'hots'; declared targets: api, data, host, link"]),
    "missing target": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: cpu_burn, cores: 1}\n", [
        "x.yml:10 faults[0] (cpu_burn): missing key 'target'; declared targets: api, data, host, link"]),
    "wrong target kind": (BASE + "faults:\n  - {at: 1s, for: 2s, fault: pause, target: data}\n", [
        "x.yml:10 faults[0] (pause): target 'data' is a directory target; pause needs one of: container, kafka_cluster, process"]),
    "bad repeat": (BASE + "faults:\n  - {at: 0s, for: 10s, fault: cpu_burn, target: host, cores: 1, repeat: {every: 5s, times: 3}}\n"
                   "  - {at: 100s, for: 1s, fault: cpu_burn, target: host, cores: 1, repeat: {every: 5s, times: 0, count: 2}}\n", [
        "x.yml:10 faults[0] (cpu_burn): 'repeat': every (5s) must be at least 'for' (10s), or the occurrences overlap",
        "x.yml:11 faults[1] (cpu_burn): unknown key 'count'; expected one of: every, times",
        "x.yml:11 faults[1] (cpu_burn): 'times': must be between 1 and 1000; got 0"]),
    "overlap on one target": (BASE + "faults:\n  - {at: 10s, for: 20s, fault: latency, target: link, latency_ms: 100}\n"
                              "  - {at: 25s, for: 10s, fault: partition, target: link}\n", [
        f"x.yml:11 faults[1] (partition): overlaps faults[0] (latency) on target 'link' from t=25s to t=30s; {OVERLAP_RULE}"]),
    "overlap found through repeat": (BASE + "faults:\n  - {at: 0s, for: 5s, fault: cpu_burn, target: host, cores: 1, repeat: {every: 30s, times: 3}}\n"
                                     "  - {at: 62s, for: 5s, fault: memory_pressure, target: host, size_bytes: 1MB}\n", [
        f"x.yml:11 faults[1] (memory_pressure): overlaps faults[0] (cpu_burn) on target 'host' from t=62s to t=65s; {OVERLAP_RULE}"]),
    "toxics on the same stream overlap": (BASE + "faults:\n  - {at: 0s, for: 10s, fault: latency, target: link, latency_ms: 5, stream: both}\n"
                                          "  - {at: 5s, for: 10s, fault: bandwidth, target: link, rate_kbps: 5, stream: upstream}\n", [
        f"x.yml:11 faults[1] (bandwidth): overlaps faults[0] (latency) on target 'link' from t=5s to t=10s; {OVERLAP_RULE}"]),
    # -- SLOs --
    "unknown metric": (BASE + "slos:\n  - {name: a, metric: error_rte, max: 0.1}\n", [
        f"x.yml:10 slos[0] (a): unknown metric 'error_rte'; expected one of: {METRICS}"]),
    "unknown phase": (BASE + "slos:\n  - {name: a, metric: error_rate, max: 0.1, during: warmup}\n", [
        "x.yml:10 slos[0] (a): 'during': unknown value 'warmup'; expected one of: all, baseline, fault, recovery, tail"]),
    "unknown probe": (BASE + "slos:\n  - {name: a, metric: detection_time, via: helth, max: 30s}\n", [
        "x.yml:10 slos[0] (a): 'via': unknown probe 'helth'; expected 'errors' or a declared probe: health"]),
    "unknown target in an SLO": (BASE + "slos:\n  - {name: a, metric: recovery_time, max: 30s, targets: [lnk]}\n", [
        "x.yml:10 slos[0] (a): 'targets': unknown target 'lnk'; declared targets: api, data, host, link"]),
    "probe of the wrong kind": ("name: t\nprobes:\n  lag: {kafka_lag: {bootstrap: b, group: g, topic: t, every: 1s}}\n"
                                "slos:\n  - {name: h, metric: health_truthful, probe: lag}\n", [
        "x.yml:5 slos[0] (h): 'probe': probe 'lag' is a kafka_lag probe; expected an http probe"]),
    "duplicate SLO name": (BASE + "slos:\n  - {name: a, metric: recovery_time, max: 30s}\n  - {name: a, metric: lost_writes}\n", [
        "x.yml:11 slos[1] (a): duplicate SLO name 'a' (first at line 10)"]),
    "SLO keys missing, wrong or unknown": (BASE + "slos:\n  - {metric: latency}\n  - {name: b}\n"
                                           "  - {name: c, metric: alerts_fired, alerts: [], within: 1m, silent_failure: maybe, extra: 1}\n"
                                           "  - {name: d, metric: error_rate, max: 2}\n  - {name: e, metric: latency, percentile: 99.99, max: 1s}\n"
                                           "  - {name: f, metric: lost_writes, check: everything}\n", [
        "x.yml:10 slos[0]: missing key 'name'",
        "x.yml:10 slos[0]: missing key 'max' or 'max_ratio' (an absolute limit, a ratio to the baseline, or both)",
        f"x.yml:11 slos[1] (b): missing key 'metric'; expected one of: {METRICS}",
        "x.yml:12 slos[2] (c): unknown key 'extra' for metric alerts_fired; expected one of: alerts, endpoints, metric, name, optional, probe, silent_failure, within",
        "x.yml:12 slos[2] (c): 'alerts': must list at least one",
        "x.yml:12 slos[2] (c): 'silent_failure': expected true or false; got 'maybe'",
        "x.yml:13 slos[3] (d): 'max': must be between 0 and 1; got 2",
        "x.yml:14 slos[4] (e): 'percentile': must be between 50 and 99.9; got 99.99",
        "x.yml:15 slos[5] (f): 'check': unknown value 'everything'; expected one of: all, kafka, pipeline"]),
    # -- settings --
    "bad settings": ("name: t\nsettings: {recovery_window: 0s, sustain: x, allowed_hosts: [a, [b]], colour: red}\n", [
        "x.yml:2 settings: unknown key 'colour'; expected one of: allowed_hosts, catch_up, recovery_window, sustain",
        "x.yml:2 settings: 'recovery_window': must be more than zero; got '0s'",
        "x.yml:2 settings: 'sustain': expected a number of seconds or a duration like 250ms, 30s, 2m, 1m30s, 1h; got 'x'",
        "x.yml:2 settings: 'allowed_hosts': expected text; got a list"]),
}


@pytest.mark.parametrize("text, expected", list(CASES.values()), ids=list(CASES))
def test_exact_messages(text, expected):
    assert problems(text) == expected


def test_every_problem_is_reported_together_in_line_order():
    text = ("name: t\ncolour: blue\ntargets:\n  host: {host: local}\nfaults:\n"
            "  - {at: -1s, for: 2s, fault: cpu_burn, target: host, cores: 1, corez: 2}\n"
            "  - {at: 1s, for: 2s, fault: nope, target: ghost}\n"
            "slos:\n  - {name: r, metric: recovery_time}\n  - {name: r, metric: lost_writes, max: -1}\n")
    assert problems(text) == [
        "x.yml:2: unknown key 'colour'; expected one of: description, faults, halt_when, ledger, name, on_halt, probes, settings, slos, steady_state, targets",
        "x.yml:6 faults[0] (cpu_burn): 'at': must not be negative; got '-1s'",
        "x.yml:6 faults[0] (cpu_burn): unknown parameter 'corez'; expected one of: cores, load",
        f"x.yml:7 faults[1] (nope): unknown fault 'nope'; expected one of: {KNOWN}",
        "x.yml:7 faults[1] (nope): unknown target 'ghost'; declared targets: host",
        "x.yml:9 slos[0] (r): missing key 'max'",
        "x.yml:10 slos[1] (r): duplicate SLO name 'r' (first at line 9)",
        "x.yml:10 slos[1] (r): 'max': must be at least 0; got -1",
    ]


def test_a_declared_but_invalid_target_is_reported_once_where_it_is_declared():
    text = ("name: t\ntargets:\n  broker: {process: {pidfile: '${RUN}/broker.pid'}}\n"
            "faults:\n  - {at: 1s, for: 2s, fault: pause, target: broker}\n")
    assert problems(text) == [
        "x.yml:3: environment variable 'RUN' is not set and has no default; set it or write ${RUN:-default}"]


# -- checks that look at this machine (check_targets=True) ----------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_targets_that_do_not_exist(tmp_path):
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not-a-pid\n")
    stale = tmp_path / "stale.pid"
    dead = _dead_pid()
    stale.write_text(f"{dead}\n")
    missing = tmp_path / "missing.pid"
    text = (f"name: t\ntargets:\n"
            f"  a: {{process: {{pidfile: '{missing}'}}}}\n"
            f"  b: {{process: {{pidfile: '{garbage}'}}}}\n"
            f"  c: {{process: {{pidfile: '{stale}'}}}}\n"
            f"  d: {{process: {{pid: {dead}}}}}\n"
            f"  e: {{process: {{command: [no-such-program-xyz, --flag]}}}}\n"
            f"  f: {{process: {{pid: {os.getpid()}, restart: 'no-such-restart-xyz now', cwd: '{tmp_path}/nowhere'}}}}\n"
            f"  g: {{directory: '{tmp_path}/nowhere'}}\n")
    assert problems(text, check_targets=True) == [
        f"x.yml:3 targets.a (process): pidfile '{missing}' does not exist (is the process running?)",
        f"x.yml:4 targets.b (process): pidfile '{garbage}' does not hold a process id; got 'not-a-pid'",
        f"x.yml:5 targets.c (process): process {dead} from pidfile '{stale}' is not running",
        f"x.yml:6 targets.d (process): process {dead} is not running",
        "x.yml:7 targets.e (process): 'command': command 'no-such-program-xyz' not found on PATH",
        "x.yml:8 targets.f (process): 'restart': command 'no-such-restart-xyz' not found on PATH",
        f"x.yml:8 targets.f (process): 'cwd': directory '{tmp_path}/nowhere' does not exist",
        f"x.yml:9 targets.g (directory): directory '{tmp_path}/nowhere' does not exist",
    ]
    # The same file is fine offline: nothing above is checked before the platform is up.
    assert parse_plan(text, "x.yml", environ={}).name == "t"


def test_a_fault_classes_own_check_is_reported_with_target_checks(tmp_path):
    # disk_fill's check looks at the directory now; offline validation skips it with the other machine checks.
    text = (f"name: t\ntargets:\n  d: {{directory: '{tmp_path}/later'}}\n"
            f"faults:\n  - {{at: 1s, for: 2s, fault: disk_fill, target: d, size_bytes: 1MB}}\n")
    assert parse_plan(text, "x.yml", environ={}).faults[0].type == "disk_fill"
    found = problems(text, check_targets=True)
    assert found[0] == f"x.yml:3 targets.d (directory): directory '{tmp_path}/later' does not exist"
    (tmp_path / "later").mkdir()
    text_huge = text.replace("size_bytes: 1MB", "size_bytes: 1000000GB")
    found = problems(text_huge, check_targets=True)
    assert len(found) == 1 and found[0].startswith("x.yml:5 faults[0] (disk_fill): "), found


def test_load_plan_file_problems(tmp_path):
    with pytest.raises(PlanError) as info:
        load_plan(str(tmp_path / "nope.yml"))
    assert str(info.value) == f"{tmp_path}/nope.yml: scenario file not found"
    with pytest.raises(PlanError) as info:
        load_plan(str(tmp_path))
    assert str(info.value) == f"{tmp_path}: is a directory; expected a scenario file (YAML)"
    binary = tmp_path / "bin.yml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(PlanError) as info:
        load_plan(str(binary))
    assert str(info.value) == f"{binary}: is not UTF-8 text (invalid start byte at byte 6)"
