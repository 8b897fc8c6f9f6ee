"""The scenario loader on valid input: every section becomes the documented typed values."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from chaos_events.errors import PlanError
from chaos_events.faults import base as fault_base
from chaos_events.faults.base import Fault, FaultParams, known_fault_types, register
from chaos_events.scenario.model import Phase, Plan, ProbeKind, Repeat, SloMetric, TargetKind
from chaos_events.scenario.loader import load_plan, parse_plan
from chaos_events.scenario.preflight import PreflightOptions, preflight
from tests.helpers import ROOT

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yml"))


def parse(text: str, environ: dict | None = None, check_targets: bool = False, **kwargs) -> Plan:
    """The plan; `check_targets` adds the pre-run look at this machine, as a run does."""
    plan = parse_plan(text, "x.yml", environ=environ or {}, **kwargs)
    if check_targets:
        preflight(plan, PreflightOptions(environ={}))
    return plan


def test_targets_fill_the_documented_spec_keys():
    plan = parse("""
name: kinds
targets:
  p1: {process: {pidfile: .run/broker.pid, restart: "python -m chaos_events.demo start-part broker", cwd: /tmp}}
  p2: {process: {pid: 4242}}
  p3: {process: {command: [sleep, "60"]}}
  c1: {container: wotr-kafka-1}
  c2: {container: {label: "app=kafka"}}
  x1: {proxy: kafka}
  x2: {proxy: {name: api, control: "http://127.0.0.1:8474"}}
  d: {directory: /var/tmp}
  e1: {endpoint: "127.0.0.1:8000"}
  e2: {endpoint: "http://localhost:8001/api"}
  e3: {endpoint: "[::1]:9000"}
  h: {host: local}
  k: {kafka: {bootstrap: "127.0.0.1:9092,127.0.0.1:9093", topic: events}}
""")
    spec = {name: (t.kind, t.spec.model_dump(exclude_none=True)) for name, t in plan.targets.items()}
    assert spec == {
        "p1": (TargetKind.PROCESS, {"pidfile": ".run/broker.pid", "restart": (sys.executable, "-m", "chaos_events.demo", "start-part", "broker"), "cwd": "/tmp"}),
        "p2": (TargetKind.PROCESS, {"pid": 4242}),
        "p3": (TargetKind.PROCESS, {"command": ("sleep", "60")}),
        "c1": (TargetKind.CONTAINER, {"name": "wotr-kafka-1"}),
        "c2": (TargetKind.CONTAINER, {"label": "app=kafka"}),
        "x1": (TargetKind.PROXY, {"route": "kafka", "server": "harness"}),
        "x2": (TargetKind.PROXY, {"route": "api", "control": "http://127.0.0.1:8474", "server": "harness"}),
        "d": (TargetKind.DIRECTORY, {"path": "/var/tmp"}),
        "e1": (TargetKind.ENDPOINT, {"host": "127.0.0.1", "port": 8000}),
        "e2": (TargetKind.ENDPOINT, {"host": "localhost", "port": 8001, "url": "http://localhost:8001/api"}),
        "e3": (TargetKind.ENDPOINT, {"host": "::1", "port": 9000}),
        "h": (TargetKind.HOST, {}),
        "k": (TargetKind.KAFKA, {"bootstrap": "127.0.0.1:9092,127.0.0.1:9093", "topic": "events"}),
    }
    assert plan.targets["p1"].line == 4 and plan.targets["k"].line == 16


def test_faults_probes_slos_and_settings():
    plan = parse("""
name: full
description: a whole scenario
targets:
  broker: {process: {pid: 4242}}
  link: {proxy: kafka}
probes:
  health: {http: {url: "http://127.0.0.1:8000/health", every: 500ms, expect_status: [200, 204], timeout: 1s}}
  lag: {kafka_lag: {bootstrap: "127.0.0.1:9092", group: g, topic: events, every: 2s}}
  alerts: {prometheus_alerts: {every: 5s}}
faults:
  - {at: 30s, for: 20s, fault: pause, target: broker}
  - {at: 1m, for: 10s, fault: latency, target: link, latency_ms: 250ms, repeat: {every: 30s, times: 3}}
slos:
  - {name: errors, metric: error_rate, during: fault, max: 10%, endpoints: "POST /api/events"}
  - {name: p95, metric: latency, max_ratio: 2.5}
  - {name: detect, metric: detection_time, via: health, max: 30s}
  - {name: rec, metric: recovery_time, max: 1m}
  - {name: lost, metric: lost_writes, check: kafka}
  - {name: alerts, metric: alerts_fired, alerts: [KafkaConsumerLagHigh], within: 2m, silent_failure: true}
  - {name: truth, metric: health_truthful, probe: health, endpoints: [POST /api/events, GET /health]}
  - {name: blast, metric: blast_radius, endpoints: GET /api/explorer, max_ratio: 1.5}
  - {name: bad, metric: data_rejected}
  - {name: thr, metric: throughput_drop, during: all, max: 0.5}
  - {name: dup, metric: duplicates, max: 3}
settings: {recovery_window: 45s, sustain: 10s, allowed_hosts: [staging.internal], catch_up: 1m}
""")
    assert plan.name == "full" and plan.description == "a whole scenario" and plan.source == "x.yml"
    first, second = plan.faults
    assert (first.index, first.type, first.target, first.at_s, first.for_s, first.params.model_dump(), first.repeat, first.line) == \
        (0, "pause", "broker", 30.0, 20.0, {}, None, 12)
    assert (second.type, second.at_s, second.for_s, second.params.latency_ms, second.repeat) == \
        ("latency", 60.0, 10.0, 250.0, Repeat(every_s=30.0, times=3))
    assert second.occurrences() == [(60.0, 70.0), (90.0, 100.0), (120.0, 130.0)]
    assert [(w[0], w[2].index) for w in plan.fault_windows()] == [(30.0, 0), (60.0, 1), (90.0, 1), (120.0, 1)]

    health, lag, alerts = plan.probes["health"], plan.probes["lag"], plan.probes["alerts"]
    assert (health.kind, health.every_s, health.params.model_dump()) == \
        (ProbeKind.HTTP, 0.5, {"url": "http://127.0.0.1:8000/health", "every_s": 0.5, "expect_status": (200, 204), "timeout_s": 1.0})
    assert (lag.kind, lag.every_s, lag.params.model_dump()) == \
        (ProbeKind.KAFKA_LAG, 2.0, {"bootstrap": "127.0.0.1:9092", "group": "g", "topic": "events", "every_s": 2.0})
    assert (alerts.kind, alerts.every_s, alerts.params.model_dump()) == (ProbeKind.PROMETHEUS_ALERTS, 5.0, {"url": None, "every_s": 5.0})

    slos = {s.name: (s.metric, s.params.model_dump()) for s in plan.slos}
    assert slos == {
        "errors": (SloMetric.ERROR_RATE, {"during": Phase.FAULT, "max": 0.1, "endpoints": ("POST /api/events",)}),
        "p95": (SloMetric.LATENCY, {"percentile": 95.0, "during": Phase.FAULT, "max_s": None, "max_ratio": 2.5, "endpoints": ()}),
        "detect": (SloMetric.DETECTION_TIME, {"via": "health", "max_s": 30.0, "targets": (), "endpoints": (), "alerts": ()}),
        "rec": (SloMetric.RECOVERY_TIME, {"max_s": 60.0, "endpoints": (), "method": "band", "targets": ()}),
        "lost": (SloMetric.LOST_WRITES, {"max": 0, "check": "kafka"}),
        "alerts": (SloMetric.ALERTS_FIRED, {"alerts": ("KafkaConsumerLagHigh",), "within_s": 120.0, "silent_failure": True,
                                            "probe": None, "endpoints": ()}),
        "truth": (SloMetric.HEALTH_TRUTHFUL, {"probe": "health", "endpoints": ("POST /api/events", "GET /health"), "error_threshold": 0.5, "max": 0}),
        "blast": (SloMetric.BLAST_RADIUS, {"endpoints": ("GET /api/explorer",), "during": Phase.FAULT, "max": 0, "max_ratio": 1.5}),
        "bad": (SloMetric.DATA_REJECTED, {"max_accepted": 0}),
        "thr": (SloMetric.THROUGHPUT_DROP, {"during": Phase.ALL, "max": 0.5, "endpoints": ()}),
        "dup": (SloMetric.DUPLICATES, {"max": 3, "check": None}),
    }
    s = plan.settings
    assert (s.recovery_window_s, s.sustain_s, s.allowed_hosts, s.catch_up_s) == (45.0, 10.0, ("staging.internal",), 60.0)


def test_minimal_plan_has_safe_defaults():
    plan = parse("name: load-only\n")
    assert (plan.targets, plan.probes, plan.faults, plan.slos) == ({}, {}, (), ())
    assert plan.settings.allowed_hosts == ("127.0.0.1", "localhost", "::1") and plan.settings.recovery_window_s == 30.0


def test_interpolation_from_the_environment():
    text = """
name: ${SCENARIO_NAME:-fallback}
targets:
  d: {directory: "${RUN_DIR:-.run/demo}/data"}
  api: {endpoint: "${API:-http://127.0.0.1:8000}"}
  host: {host: local}
faults:
  - {at: "${START:-10s}", for: 5s, fault: cpu_burn, target: host, cores: "${CORES:-1}"}
slos:
  - name: "cost $$5"
    metric: error_rate
    max: ${MAX}
"""
    plan = parse(text, {"RUN_DIR": "/srv/run", "CORES": "2", "MAX": "0.25", "START": ""})
    assert plan.name == "fallback"                      # unset -> default
    assert plan.targets["d"].spec.path == "/srv/run/data"
    assert plan.targets["api"].spec.url == "http://127.0.0.1:8000"
    assert plan.faults[0].at_s == 10.0                  # empty -> default, as in the shell's :-
    assert plan.faults[0].params.cores == 2             # a quoted single reference is re-typed: the number 2
    assert plan.slos[0].name == "cost $5" and plan.slos[0].params.max == 0.25
    # Comments are not interpolated, and a value cannot change the structure.
    plan = parse("# ${NOT_SET} in a comment\nname: ${V}\n", {"V": "a: b\n- c"})
    assert plan.name == "a: b\n- c"


def test_merge_keys_and_nested_params():
    plan = parse("""
name: merge
targets:
  link: {proxy: kafka}
faults:
  - &slow {at: 10s, for: 5s, fault: latency, target: link, latency_ms: 100}
  - {<<: *slow, at: 20s, params: {jitter_ms: 10}}
""")
    assert [(f.at_s, f.params.latency_ms, f.params.jitter_ms) for f in plan.faults] == [(10.0, 100.0, 0.0), (20.0, 100.0, 10.0)]


def test_proxy_toxics_of_different_types_on_different_streams_may_overlap():
    plan = parse("""
name: toxics
targets:
  link: {proxy: kafka}
faults:
  - {at: 0s, for: 10s, fault: latency, target: link, latency_ms: 100, stream: upstream}
  - {at: 5s, for: 10s, fault: bandwidth, target: link, rate_kbps: 64, stream: downstream}
  - {at: 10s, for: 5s, fault: latency, target: link, latency_ms: 100, stream: upstream}
""")
    assert len(plan.faults) == 3  # back-to-back occurrences (end == next start) do not overlap either


def test_extra_allowed_hosts_and_settings_allow_remote_targets():
    text = "name: t\ntargets:\n  db: {endpoint: 'db.staging:5432'}\n"
    with pytest.raises(PlanError):
        parse(text)
    assert parse(text, extra_allowed=("db.staging",)).extra_allowed == ("db.staging",)
    assert parse(text, extra_allowed="other, db.staging").targets["db"].spec.host == "db.staging"
    assert parse(text + "settings: {allowed_hosts: [db.staging]}\n").targets["db"].spec.port == 5432
    assert parse(text.replace("db.staging", "192.0.2.3") + "settings: {allowed_hosts: [192.0.2.0/24]}\n").targets["db"].spec.host == "192.0.2.3"


def test_live_targets_pass_the_target_checks(tmp_path):
    pidfile = tmp_path / "me.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    plan = parse(f"""
name: live
targets:
  me: {{process: {{pidfile: '{pidfile}', restart: [python, -c, pass], cwd: '{tmp_path}'}}}}
  me2: {{process: {{pid: {os.getpid()}}}}}
  sh: {{process: {{command: [sh, -c, 'sleep 1']}}}}
  d: {{directory: '{tmp_path}'}}
""", check_targets=True)
    assert plan.targets["me"].spec.restart[0] == sys.executable
    assert set(plan.targets) == {"me", "me2", "sh", "d"}


def test_load_plan_reads_a_file(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text("name: from-file\n")
    plan = load_plan(str(path))
    assert (plan.name, plan.source) == ("from-file", str(path))


# -- a fault class's own check ---------------------------------------------------------------------------------
@pytest.fixture
def checking_fault_type():
    """A throwaway fault type whose `check` reports a cap and can blow up; unregistered afterwards."""

    class Params(FaultParams):
        level: int = 1

    class Checking(Fault):
        type_name = "test_checking_fault"
        target_kinds = frozenset({TargetKind.HOST})

        @classmethod
        def preflight(cls, params, target):
            if params.level > 5:
                return [f"level {params.level} is above the cap of 5"]
            if params.level == 0:
                raise RuntimeError("boom")
            return []

    Checking.Params = Params
    register(Checking)
    try:
        yield Checking
    finally:
        fault_base._REGISTRY.pop(Checking.type_name, None)


def test_fault_check_messages_are_reported(checking_fault_type):
    text = ("name: t\ntargets:\n  h: {host: local}\nfaults:\n"
            "  - {at: 0s, for: 1s, fault: test_checking_fault, target: h, level: 9}\n"
            "  - {at: 5s, for: 1s, fault: test_checking_fault, target: h, level: 0}\n"
            "  - {at: 9s, for: 1s, fault: test_checking_fault, target: h}\n")
    with pytest.raises(PlanError) as info:
        parse(text, check_targets=True)
    assert [str(p) for p in info.value.problems] == [
        "x.yml:5 faults[0] (test_checking_fault): level 9 is above the cap of 5",
        "x.yml:6 faults[1] (test_checking_fault): pre-run check failed: RuntimeError: boom",
    ]
    assert len(parse(text).faults) == 3  # offline validation leaves machine checks to the run


def test_real_cpu_burn_cap_is_checked():
    text = "name: t\ntargets:\n  h: {host: local}\nfaults:\n  - {at: 0s, for: 1s, fault: cpu_burn, target: h, cores: 4096}\n"
    with pytest.raises(PlanError) as info:
        parse(text, check_targets=True)
    cores = os.cpu_count()
    assert str(info.value) == f"x.yml:5 faults[0] (cpu_burn): cores 4096 exceeds the {cores} CPU cores of this machine; expected 1..{cores}"


# -- the shipped scenarios -------------------------------------------------------------------------------------
def test_every_fault_family_is_registered():
    assert {"pause", "kill", "restart", "latency", "partition", "cpu_burn", "memory_pressure", "disk_fill",
            "pool_exhaustion", "bad_payloads", "poison_messages"} <= set(known_fault_types())


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_shipped_scenarios_are_valid(path: Path):
    plan = load_plan(str(path), environ={})
    assert plan.name == path.stem and plan.faults and plan.slos
    for target in plan.targets.values():
        if target.kind is TargetKind.PROCESS:
            assert target.spec.pidfile.startswith(".run/demo/") and target.spec.restart[0] == sys.executable


def test_shipped_scenarios_cover_the_seed_categories():
    names = {p.stem for p in SCENARIOS}
    assert {"gameday", "service-broker-pause", "service-broker-restart", "service-consumer-kill", "network-partition",
            "resource-exhaustion", "data-corruption"} <= names


def test_a_startable_process_target_may_be_down_only_for_start_faults(tmp_path):
    # `start` faults exist for stopped targets: with a restart command, a missing or stale pidfile is fine for them;
    # any other fault on a target that is not running is refused.
    missing, stale = tmp_path / "missing.pid", tmp_path / "stale.pid"
    stale.write_text("999999999\n")
    text = f"""
name: start-it
targets:
  gone: {{process: {{pidfile: "{missing}", restart: ["true"]}}}}
  stale: {{process: {{pidfile: "{stale}", restart: ["true"]}}}}
faults:
  - {{at: 1s, for: 5s, fault: start, target: gone}}
  - {{at: 1s, for: 5s, fault: start, target: stale}}
"""
    plan = parse_plan(text, "start.yml")
    assert [f.type for f in plan.faults] == ["start", "start"]
    preflight(plan, PreflightOptions(environ={}))
    with pytest.raises(PlanError) as err:
        pausing = parse_plan(text.replace("fault: start, target: stale", "fault: pause, target: stale"), "start.yml")
        preflight(pausing, PreflightOptions(environ={}))
    assert str(err.value) == f"start.yml:5 targets.stale (process): process 999999999 from pidfile '{stale}' is not running"
