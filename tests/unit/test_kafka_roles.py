"""Service faults aimed at a broker of a `kafka_cluster` target by its role: the scenario's shape and every bad input
(exact messages, file:line field), the pre-run checks against what the cluster reports, and inject/revert on real
processes standing in for brokers, including the journal's revert after the run is gone (`chaos-events revert`).

The cluster's answers come from a fake ClusterSnapshot (the admin adapter is exercised against a real cluster in
tests/integration/test_apache_kafka.py); an unreachable cluster is a real closed port.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos_events.backends import kafka_admin
from chaos_events.backends.kafka_admin import ClusterSnapshot, KafkaAdminError
from chaos_events.errors import InjectionError, PlanError
from chaos_events.faults.base import Fault, FaultContext, fault_type
from chaos_events.record import FaultEvent, FaultEventKind, Record
from chaos_events.run.journal import Journal
from chaos_events.scenario.loader import parse_plan
from chaos_events.scenario.preflight import PreflightOptions, preflight
from tests.helpers import ROOT, free_port

BOOTSTRAP = "127.0.0.1:19092"
SLEEP = ["sleep", "985"]     # an uncommon argv: cleanup only ends processes that show exactly this


def scenario(fault: str, brokers: str | None = None, extra_target: str = "") -> str:
    brokers = brokers if brokers is not None else (
        "        0: {process: {pidfile: /tmp/k0.pid, restart: [sleep, '1']}}\n"
        "        1: {container: {name: kafka-1}}\n")
    return ("name: t\n"                                   # 1
            "targets:\n"                                  # 2
            "  cluster:\n"                                # 3
            "    kafka_cluster:\n"                        # 4
            f"      bootstrap: {BOOTSTRAP}\n"             # 5
            "      brokers:\n"                            # 6
            f"{brokers}"                                  # 7, 8
            f"{extra_target}"
            "faults:\n"
            f"  - {fault}\n")


def problems(text: str, check_targets: bool = False) -> list[str]:
    with pytest.raises(PlanError) as info:
        plan = parse_plan(text, "x.yml", environ={})
        if check_targets:
            preflight(plan, PreflightOptions(environ={}, containers=False))
    return [str(p) for p in info.value.problems]


KILL = "{at: 1s, for: 2s, fault: kill, target: cluster"
ROLE_CASES = {
    "no role": (KILL + "}", [
        "x.yml:10 faults[0] (kill): missing parameter 'broker': target 'cluster' is a kafka_cluster; name the broker "
        "by its role, like {leader: {topic: events, partition: 0}}, {controller: true} or {id: 2}"]),
    "id not in the map": (KILL + ", broker: {id: 5}}", [
        "x.yml:10 faults[0] (kill): 'broker': broker 5 is not in the brokers: map of target 'cluster' (it maps: 0, 1)"]),
    "unknown role": (KILL + ", broker: {follower: true}}", [
        "x.yml:10 faults[0] (kill): parameter 'broker': unknown key 'follower'; expected one of: controller, id, leader"]),
    "two roles": (KILL + ", broker: {id: 1, leader: {topic: events}}}", [
        "x.yml:10 faults[0] (kill): parameter 'broker': expected exactly one of: leader, controller, id; got: leader, id"]),
    "controller false": (KILL + ", broker: {controller: false}}", [
        "x.yml:10 faults[0] (kill): parameter 'broker': 'controller': only true names a broker (the active "
        "controller); got false"]),
    "role not a mapping": (KILL + ", broker: 2}", [
        "x.yml:10 faults[0] (kill): parameter 'broker': expected a role like {leader: {topic: events, partition: 0}}, "
        "{controller: true} or {id: 2}; got 2"]),
    "leader without topic": (KILL + ", broker: {leader: {partition: 1}}}", [
        "x.yml:10 faults[0] (kill): missing parameter 'topic'"]),
    "negative partition": (KILL + ", broker: {leader: {topic: events, partition: -1}}}", [
        "x.yml:10 faults[0] (kill): parameter 'partition': must be at least 0; got -1"]),
    "bad broker id": (KILL + ", broker: {id: x}}", [
        "x.yml:10 faults[0] (kill): parameter 'id': expected a broker id (a whole number, 0 or more); got 'x'"]),
    "throttle is no broker fault": ("{at: 1s, for: 2s, fault: throttle, target: cluster, cpus: 1}", [
        "x.yml:10 faults[0] (throttle): target 'cluster' is a kafka_cluster target; throttle needs one of: container"]),
}


@pytest.mark.parametrize("fault, expected", list(ROLE_CASES.values()), ids=list(ROLE_CASES))
def test_bad_roles_are_refused_with_the_fault_line(fault, expected):
    assert problems(scenario(fault)) == expected


def test_a_role_on_a_plain_process_target_is_refused():
    text = scenario(KILL.replace("cluster", "p") + ", broker: {id: 1}}",
                    extra_target="  p: {process: {pidfile: /tmp/p.pid, restart: [sleep, '1']}}\n")
    assert problems(text) == [
        "x.yml:11 faults[0] (kill): 'broker': names a broker of a kafka_cluster target; target 'p' is a process target"]


BROKER_MAP_CASES = {
    "empty map": (" {}\n", [
        "x.yml:6 targets.cluster (kafka_cluster): 'brokers': must map at least one broker id to a target, like "
        "{0: {process: {pidfile: ...}}}"]),
    "a list": (" [kafka-0]\n", [
        "x.yml:6 targets.cluster (kafka_cluster): 'brokers': expected a mapping of broker ids to targets, like "
        "{0: {process: {pidfile: ...}}}; got a list"]),
    "not a broker id": ("\n        zero: {container: {name: k0}}\n", [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': expected a broker id (a whole number, 0 or more); got 'zero'"]),
    "two kinds for one broker": ("\n        0: {container: {name: k0}, process: {pid: 5}}\n", [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': broker 0: expected exactly one of: process, container; "
        "got: process, container"]),
    "unknown kind": ("\n        0: {vm: {name: k0}}\n", [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': broker 0: unknown key 'vm'; expected one of: container, gid, inter_broker_ports, process"]),
}


@pytest.mark.parametrize("brokers, expected", list(BROKER_MAP_CASES.values()), ids=list(BROKER_MAP_CASES))
def test_bad_brokers_maps_are_refused_at_their_line(brokers, expected):
    text = scenario("{at: 1s, for: 2s, fault: pause, target: cluster, broker: {id: 0}}", brokers="")
    assert problems(text.replace("      brokers:\n", "      brokers:" + brokers)) == expected


def test_a_process_broker_that_cannot_be_started_again_is_refused_for_kill():
    text = scenario(KILL + ", broker: {leader: {topic: events}}}",
                    brokers="        0: {process: {pidfile: /tmp/k0.pid}}\n        1: {process: {pidfile: /tmp/k1.pid}}\n")
    assert problems(text) == [
        "x.yml:10 faults[0] (kill): target 'cluster': brokers 0, 1 of the brokers: map have no `restart` or `command` "
        "to start the process; kill needs one so that its revert can start it again, or give the fault the parameter "
        "`restart: false` to leave it dead"]
    parse_plan(text.replace("}}}\n", "}}, restart: false}\n"), "x.yml", environ={})   # leave it dead: fine


def test_overlapping_faults_on_a_cluster_conflict_unless_they_name_two_broker_ids():
    base = scenario("{at: 1s, for: 5s, fault: pause, target: cluster, broker: {id: 0}}")
    parse_plan(base + "  - {at: 2s, for: 5s, fault: pause, target: cluster, broker: {id: 1}}\n", "x.yml", environ={})
    clash = problems(base + "  - {at: 2s, for: 5s, fault: kill, target: cluster, broker: {leader: {topic: events}}}\n")
    assert clash == ["x.yml:11 faults[1] (kill): overlaps faults[0] (pause) on target 'cluster' from t=2s to t=6s; two "
                     "faults on one target at once conflict (only proxy toxics of different types on different streams "
                     "may overlap)"]


# -- the pre-run checks: they ask the cluster ------------------------------------------------------------------
def fake_cluster(monkeypatch, brokers=(0, 1), leaders=None) -> list[str]:
    """The admin API's answer, from now on; returns the list of bootstraps asked."""
    asked: list[str] = []
    leaders = {"events": {0: 1, 1: 0, 2: 1}} if leaders is None else leaders

    def snapshot(bootstrap: str, timeout_s: float = kafka_admin.TIMEOUT_S) -> ClusterSnapshot:
        asked.append(bootstrap)
        return ClusterSnapshot(bootstrap, tuple(brokers), {k: dict(v) for k, v in leaders.items()})

    monkeypatch.setattr(kafka_admin, "cluster_snapshot", snapshot)
    return asked


def container_brokers(ids=(0, 1)) -> str:
    return "".join(f"        {n}: {{container: {{name: kafka-{n}}}}}\n" for n in ids)


def test_an_unknown_topic_or_partition_fails_the_pre_run_check(monkeypatch):
    fake_cluster(monkeypatch, leaders={"events": {0: 1, 1: 0}, "__consumer_offsets": {0: 0}})
    topic = scenario(KILL + ", broker: {leader: {topic: evnets}}}", brokers=container_brokers())
    assert problems(topic, check_targets=True) == [
        f"x.yml:10 faults[0] (kill): 'broker': topic 'evnets' not found on {BOOTSTRAP}; topics: events"]
    partition = scenario(KILL + ", broker: {leader: {topic: events, partition: 7}}}", brokers=container_brokers())
    assert problems(partition, check_targets=True) == [
        f"x.yml:10 faults[0] (kill): 'broker': topic 'events' has no partition 7 on {BOOTSTRAP} (partitions: 0-1)"]


def test_a_brokers_map_that_does_not_cover_the_cluster_fails_the_pre_run_check(monkeypatch):
    fake_cluster(monkeypatch, brokers=(0, 1, 2))
    text = scenario(KILL + ", broker: {leader: {topic: events}}}", brokers=container_brokers())
    assert problems(text, check_targets=True) == [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': the cluster reports brokers 0, 1, 2; the map does not "
        "cover 2 (add a process or container for each)"]


def test_a_mapped_process_broker_that_does_not_run_fails_the_pre_run_check(monkeypatch, tmp_path):
    fake_cluster(monkeypatch)
    brokers = (f"        0: {{process: {{pidfile: {tmp_path}/k0.pid, restart: [sleep, '1']}}}}\n"
               "        1: {container: {name: kafka-1}}\n")
    assert problems(scenario(KILL + ", broker: {id: 0}}", brokers=brokers), check_targets=True) == [
        f"x.yml:7 targets.cluster (kafka_cluster): 'brokers': broker 0: pidfile '{tmp_path}/k0.pid' does not exist "
        "(is the process running?)"]


def test_an_unreachable_cluster_fails_the_pre_run_check_once_and_the_cli_exits_2(tmp_path):
    address = f"127.0.0.1:{free_port()}"   # nothing listens there
    text = scenario(KILL + ", broker: {leader: {topic: events}}}", brokers=container_brokers()).replace(BOOTSTRAP, address)
    path = tmp_path / "s.yml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "chaos_events.cli", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr == (f"{path}:5 targets.cluster (kafka_cluster): Kafka cluster at {address} not reachable: "
                           f"no broker answered the admin API within 5 s\n")


# -- inject and revert, on processes standing in for brokers ---------------------------------------------------
@pytest.fixture
def brokers(tmp_path):
    """Three `sleep` processes as brokers 0-2, each with a pidfile; every one still alive is ended at the end."""
    pidfiles = []
    for n in range(3):
        proc = subprocess.Popen(SLEEP, start_new_session=True)
        pidfile = tmp_path / f"kafka-{n}.pid"
        pidfile.write_text(f"{proc.pid}\n")
        pidfiles.append(pidfile)
    yield pidfiles
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text())
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [w.encode() for w in SLEEP]:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def cluster_plan(pidfiles, fault: str):
    lines = "".join(f"        {n}: {{process: {{pidfile: {p}, restart: [sleep, '985']}}}}\n" for n, p in enumerate(pidfiles))
    return parse_plan(scenario(fault, brokers=lines), "x.yml", environ={})


def build(plan) -> Fault:
    spec = plan.faults[0]
    return fault_type(spec.type)(spec.params, plan.targets[spec.target])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def pids(pidfiles) -> list[int]:
    return [int(p.read_text()) for p in pidfiles]


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_kill_by_leader_role_hits_the_leader_and_its_revert_notes_the_new_leader(monkeypatch, brokers, tmp_path):
    leaders = {"events": {0: 1}}
    fake_cluster(monkeypatch, brokers=(0, 1, 2), leaders=leaders)
    fault = build(cluster_plan(brokers, KILL + ", broker: {leader: {topic: events, partition: 0}}}"))
    before, logs, saved = pids(brokers), [], []
    ctx = FaultContext(run_dir=str(tmp_path), log=logs.append, save_state=lambda: saved.append(dict(fault.state)))
    fault.inject(ctx)

    assert wait_until(lambda: not alive(before[1])), "the leader (broker 1) was killed"
    assert alive(before[0]) and alive(before[2]), "the other brokers are untouched"
    assert saved[0]["broker_id"] == 1, "the resolved broker is saved (journaled) before the kill"
    assert fault.observations() == {"broker_id": 1, "role": "leader of events/0", "leader_before": 1}
    assert fault.describe() == "kill cluster (leader of events/0 = broker 1, signal=SIGKILL, restart=True)"
    assert "chaos-events: cluster: the leader of events/0 is broker 1" in logs

    leaders["events"][0] = 2          # the cluster elected broker 2 meanwhile
    fault.revert(ctx)
    fault.verify_reverted(ctx)
    restarted = int(brokers[1].read_text())
    assert restarted != before[1] and alive(restarted), "the revert started broker 1 again"
    assert fault.observations() == {"broker_id": 1, "role": "leader of events/0", "leader_before": 1, "leader_after": 2}
    fault.revert(ctx)                 # idempotent: the leader after is noted once
    assert fault.state["leader_after"] == 2 and pids(brokers)[1] == restarted


def test_the_journal_rebuild_reverts_the_broker_resolved_at_inject_not_todays_leader(monkeypatch, brokers, tmp_path):
    leaders = {"events": {0: 0}}
    fake_cluster(monkeypatch, brokers=(0, 1, 2), leaders=leaders)
    fault = build(cluster_plan(brokers, "{at: 1s, for: 2s, fault: pause, target: cluster, broker: {leader: {topic: events}}}"))
    journal = Journal(tmp_path / "journal.json", run_id="r1")
    ctx = FaultContext(run_dir=str(tmp_path), log=lambda m: None, save_state=lambda: journal.add("f0#1", fault))
    journal.add("f0#1", fault)
    fault.inject(ctx)
    paused = pids(brokers)[0]
    assert wait_until(lambda: Path(f"/proc/{paused}/stat").read_text().split(") ")[1][0] == "T")

    entry = json.loads((tmp_path / "journal.json").read_text())["entries"]["f0#1"]
    assert entry["state"]["broker_id"] == 0 and entry["target"]["kind"] == "kafka_cluster"
    leaders["events"][0] = 2          # leadership moved: the revert must still act on broker 0
    rebuilt = Fault.from_journal(entry)
    rebuilt.revert(FaultContext(run_dir=str(tmp_path), log=lambda m: None))
    assert Path(f"/proc/{paused}/stat").read_text().split(") ")[1][0] in "SR", "broker 0 resumed"
    assert rebuilt.state["leader_after"] == 2
    journal.close()


def test_chaos_events_revert_after_a_sigkill_resumes_the_same_broker(monkeypatch, brokers, tmp_path):
    """The run is gone; `chaos-events revert` (another process, no fake cluster: the bootstrap answers nothing)
    resumes the broker the journal names, and notes that it could not read the leader (-1)."""
    fake_cluster(monkeypatch, brokers=(0, 1, 2), leaders={"events": {0: 2}})
    plan = cluster_plan(brokers, "{at: 1s, for: 2s, fault: pause, target: cluster, broker: {leader: {topic: events}}}")
    fault = build(plan)
    fault.target = type(fault.target)(fault.target.name, fault.target.kind,
                                      fault.target.spec.model_copy(update={"bootstrap": f"127.0.0.1:{free_port()}"}))
    path = tmp_path / "journal.json"
    journal = Journal(path, run_id="r1")
    journal.add("f0#1", fault)
    fault.inject(FaultContext(run_dir=str(tmp_path), log=lambda m: None, save_state=lambda: journal.add("f0#1", fault)))
    paused = pids(brokers)[2]
    assert wait_until(lambda: Path(f"/proc/{paused}/stat").read_text().split(") ")[1][0] == "T")

    proc = subprocess.run([sys.executable, "-m", "chaos_events.cli", "revert", "--journal", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "reverted 1 fault", proc.stdout
    assert Path(f"/proc/{paused}/stat").read_text().split(") ")[1][0] in "SR", "broker 2 resumed"
    assert [alive(pid) for pid in pids(brokers)] == [True, True, True]


def test_restart_by_controller_role_hits_the_active_controller(monkeypatch, brokers, tmp_path):
    from chaos_events.backends import kafka_quorum

    fake_cluster(monkeypatch, brokers=(0, 1, 2))
    controller = [2]
    monkeypatch.setattr(kafka_quorum, "active_controller", lambda bootstrap, timeout_s=5.0: controller[0])
    fault = build(cluster_plan(brokers, "{at: 1s, for: 2s, fault: restart, target: cluster, broker: {controller: true}}"))
    before = pids(brokers)
    ctx = FaultContext(run_dir=str(tmp_path), log=lambda m: None)
    fault.inject(ctx)
    assert wait_until(lambda: not alive(before[2]))
    assert pids(brokers)[2] != before[2] and alive(pids(brokers)[2]), "broker 2 runs again, as a new process"
    assert alive(before[0]) and alive(before[1])
    controller[0] = 0                 # the quorum elected broker 0 while 2 restarted
    fault.revert(ctx)
    assert fault.observations() == {"broker_id": 2, "role": "active controller", "controller_before": 2,
                                    "controller_after": 0}


def test_describe_quorum_request_and_answer_bytes():
    """DescribeQuorum v0 as the Kafka protocol spells it (flexible: compact arrays and strings, tagged fields)."""
    import struct

    from chaos_events.backends.kafka_quorum import CORRELATION, QuorumError, parse_leader, request_bytes

    frame = request_bytes()
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    assert struct.unpack(">hhi", frame[4:12]) == (55, 0, CORRELATION)
    assert frame.endswith(b"\x02\x13__cluster_metadata\x02\x00\x00\x00\x00\x00\x00\x00")

    def answer(error=0, partition_error=0, leader=1):
        topic = b"__cluster_metadata"
        return (struct.pack(">i", CORRELATION) + b"\x00" + struct.pack(">h", error) + b"\x02" + bytes([len(topic) + 1])
                + topic + b"\x02" + struct.pack(">ihii", 0, partition_error, leader, 7) + b"rest of the answer")

    assert parse_leader(answer(leader=1)) == 1
    with pytest.raises(QuorumError, match=r"^DescribeQuorum refused \(Kafka error code 35\)$"):
        parse_leader(answer(error=35))
    with pytest.raises(QuorumError, match="metadata partition"):
        parse_leader(answer(partition_error=6))
    with pytest.raises(QuorumError, match="cut short"):
        parse_leader(answer()[:12])


def test_a_leader_the_brokers_map_does_not_cover_fails_the_inject_and_touches_nothing(monkeypatch, brokers, tmp_path):
    fake_cluster(monkeypatch, brokers=(0, 1, 2, 3), leaders={"events": {0: 3}})
    fault = build(cluster_plan(brokers, KILL + ", broker: {leader: {topic: events}}}"))
    ctx = FaultContext(run_dir=str(tmp_path), log=lambda m: None)
    with pytest.raises(InjectionError) as info:
        fault.inject(ctx)
    assert str(info.value) == ("target 'cluster': the leader of events/0 is broker 3, which the brokers: map does not "
                               "cover (it maps: 0, 1, 2)")
    fault.revert(ctx)                 # what the engine does next: nothing to undo, and no error
    fault.verify_reverted(ctx)
    assert fault.state == {} and all(alive(pid) for pid in pids(brokers))


def test_a_partition_without_a_leader_fails_the_inject(monkeypatch, brokers, tmp_path):
    fake_cluster(monkeypatch, brokers=(0, 1, 2), leaders={"events": {0: -1}})
    fault = build(cluster_plan(brokers, KILL + ", broker: {leader: {topic: events}}}"))
    with pytest.raises(InjectionError) as info:
        fault.inject(FaultContext(run_dir=str(tmp_path), log=lambda m: None))
    assert str(info.value) == "the leader of events/0: the partition has no leader right now"


def test_revert_before_inject_resolves_nothing_and_asks_nobody(monkeypatch, brokers, tmp_path):
    asked = fake_cluster(monkeypatch)
    fault = build(cluster_plan(brokers, KILL + ", broker: {leader: {topic: events}}}"))
    ctx = FaultContext(run_dir=str(tmp_path), log=lambda m: None)
    fault.revert(ctx)
    fault.verify_reverted(ctx)
    assert asked == [] and fault.state == {} and all(alive(pid) for pid in pids(brokers))


def test_wait_leader_waits_out_an_election_and_gives_up_on_an_unreachable_cluster():
    answers = iter([-1, -1, 2])

    def snapshot(bootstrap):
        return ClusterSnapshot(bootstrap, (0, 1, 2), {"events": {0: next(answers)}})

    assert kafka_admin.wait_leader(BOOTSTRAP, "events", 0, snapshot=snapshot, sleep=lambda s: None) == 2

    def unreachable(bootstrap):
        raise KafkaAdminError("no answer")

    assert kafka_admin.wait_leader(BOOTSTRAP, "events", 0, snapshot=unreachable, sleep=lambda s: None) == -1


# -- what the record and the report show ------------------------------------------------------------------------
def test_the_report_timeline_names_the_broker_and_the_leader_before_and_after():
    from chaos_events.verdict.content import build_report
    from chaos_events.verdict.documents import render_markdown
    from chaos_events.verdict.slo import evaluate

    plan = parse_plan(scenario("{at: 1s, for: 2s, fault: kill, target: cluster, broker: {leader: {topic: events}}}"),
                      "x.yml", environ={})
    record = Record("r1", "t", 1000.0, end_t=10.0)
    data = {"broker_id": 1, "role": "leader of events/0", "leader_before": 1}
    record.add_event(FaultEvent(1.0, 1001.0, FaultEventKind.INJECTED, "f0#1", "kill", "cluster", "kill cluster", data))
    record.add_event(FaultEvent(3.0, 1003.0, FaultEventKind.REVERTED, "f0#1", "kill", "cluster", "time up",
                                {**data, "leader_after": 2}))
    assert Record.from_dict(json.loads(json.dumps(record.to_dict()))).events == record.events
    report = build_report(evaluate(plan, record), plan, record)
    notes = [e["notes"] for e in report["timeline"]]
    assert notes == ["broker 1 (leader of events/0); leader before: 1",
                     "broker 1 (leader of events/0); leader before: 1; leader after: 2"]
    assert report["timeline"][1]["data"]["leader_after"] == 2
    markdown = render_markdown(report)
    assert "| time up; broker 1 (leader of events/0); leader before: 1; leader after: 2 |" in markdown


def test_the_engine_puts_the_resolved_broker_on_the_events_and_in_the_journal(monkeypatch, brokers, tmp_path):
    from chaos_events.run.engine import ChaosEngine

    leaders = {"events": {0: 0}}
    fake_cluster(monkeypatch, brokers=(0, 1, 2), leaders=leaders)
    plan = cluster_plan(brokers, KILL + ", broker: {leader: {topic: events}}}")
    clock = type("Clock", (), {"t": 0.0, "__call__": lambda self: self.t})()
    record, lines = Record("r1", "t", 1000.0), []
    journal = Journal(tmp_path / "journal.json", run_id="r1")
    engine = ChaosEngine(plan, record, journal, clock=clock, wall=lambda: 1000.0 + clock.t,
                         context_factory=lambda oid: FaultContext(run_dir=str(tmp_path), log=lines.append), log=lines.append)
    first = pids(brokers)[0]
    clock.t = 1.0
    engine.tick()
    assert journal.entries()["f0#1"]["state"]["broker_id"] == 0, "journaled while the fault is active"
    assert wait_until(lambda: not alive(first))
    leaders["events"][0] = 1
    clock.t = 3.0
    engine.tick()
    injected, reverted = record.events
    assert (injected.kind, injected.data) == (FaultEventKind.INJECTED,
                                              {"broker_id": 0, "role": "leader of events/0", "leader_before": 0})
    assert injected.detail == "kill cluster (leader of events/0 = broker 0, signal=SIGKILL, restart=True)"
    assert (reverted.kind, reverted.data["leader_after"]) == (FaultEventKind.REVERTED, 1)
    assert "t=1.0s inject kill cluster (leader of events/0 = broker 0, signal=SIGKILL, restart=True) [f0#1]" in lines
    assert journal.entries() == {} and alive(pids(brokers)[0]) and pids(brokers)[0] != first
    journal.close()
