"""isolate_broker: the plan's exact messages for what the fault needs (gid and inter_broker_ports of every broker),
the rules it writes (pure), and on this machine (root and iptables): the chain it installs, with exactly those rules
and the OUTPUT jump, removed by `chaos-events revert` from the journal after the run is gone.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chaos_events.backends import iptables
from chaos_events.errors import PlanError
from chaos_events.faults.base import FaultContext, fault_type
from chaos_events.faults.kafka_isolate import CHAIN_PREFIX, isolation_rules
from chaos_events.run.journal import Journal
from chaos_events.scenario.loader import parse_plan
from chaos_events.scenario.model import Target, TargetKind
from chaos_events.scenario.targets import KafkaClusterTarget
from tests.helpers import ROOT, free_port, require

SLEEP = ["sleep", "984"]
GID_BASE = 64950
ISOLATE = "{at: 1s, for: 2s, fault: isolate_broker, target: cluster, broker: {id: 0}}"


def scenario(brokers: str) -> str:
    return ("name: t\n"                                   # 1
            "targets:\n"                                  # 2
            "  cluster:\n"                                # 3
            "    kafka_cluster:\n"                        # 4
            "      bootstrap: 127.0.0.1:19092\n"          # 5
            "      brokers:\n"                            # 6
            f"{brokers}"                                  # 7, 8
            "faults:\n"                                   # 9
            f"  - {ISOLATE}\n")                           # 10


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "x.yml", environ={})
    return [str(p) for p in info.value.problems]


FULL_1 = "        1: {process: {pid: 6}, gid: 64001, inter_broker_ports: [19095, 19096]}\n"
PLAN_CASES = {
    "no gid, no ports": ("        0: {process: {pid: 5}}\n" + FULL_1, [
        "x.yml:10 faults[0] (isolate_broker): target 'cluster': broker 0 of the brokers: map has no 'gid' and no "
        "'inter_broker_ports'; isolate_broker needs every broker's `gid: <group id its process runs with>` and "
        "`inter_broker_ports: [<replication port>, <controller port>]`"]),
    "a container": ("        0: {container: {name: k0}, gid: 64000, inter_broker_ports: [19093]}\n" + FULL_1, [
        "x.yml:10 faults[0] (isolate_broker): target 'cluster': broker 0 of the brokers: map is a container; "
        "isolate_broker needs every broker as a local process (it tells them apart by gid)"]),
    "a shared gid": ("        0: {process: {pid: 5}, gid: 64001, inter_broker_ports: [19093]}\n" + FULL_1, [
        "x.yml:10 faults[0] (isolate_broker): target 'cluster': brokers share a gid (64001, 64001); isolate_broker "
        "needs a group id of its own for each broker"]),
    "port 0": ("        0: {process: {pid: 5}, gid: 64000, inter_broker_ports: [0]}\n" + FULL_1, [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': broker 0: 'inter_broker_ports': expected a port from 1 to 65535; "
        "got 0"]),
    "no ports": ("        0: {process: {pid: 5}, gid: 64000, inter_broker_ports: []}\n" + FULL_1, [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': broker 0: 'inter_broker_ports': expected a list of ports "
        "like [19093, 19094]; got an empty list"]),
    "a gid in words": ("        0: {process: {pid: 5}, gid: root, inter_broker_ports: [19093]}\n" + FULL_1, [
        "x.yml:7 targets.cluster (kafka_cluster): 'brokers': broker 0: 'gid': expected a whole number, at least 1 (a group "
        "id); got 'root'"]),
}


@pytest.mark.parametrize("brokers, expected", list(PLAN_CASES.values()), ids=list(PLAN_CASES))
def test_what_isolate_broker_needs_is_refused_at_load(brokers, expected):
    assert problems(scenario(brokers)) == expected


def test_a_full_brokers_map_loads():
    plan = parse_plan(scenario("        0: {process: {pid: 5}, gid: 64000, inter_broker_ports: [19093, 19094]}\n" + FULL_1),
                      "x.yml", environ={})
    assert [f.type for f in plan.faults] == ["isolate_broker"]


def test_the_rules_cut_both_directions_and_only_inter_broker_ports():
    spec = KafkaClusterTarget.model_validate({"bootstrap": "127.0.0.1:1", "brokers": {
        n: {"process": {"pid": 10 + n}, "gid": 64000 + n, "inter_broker_ports": [19100 + 2 * n, 19101 + 2 * n]}
        for n in range(3)}})
    drops = [(rule[5], rule[7]) for rule in isolation_rules(spec, 1)]    # (gid, dport)
    assert sorted(drops) == sorted([
        ("64001", "19100"), ("64001", "19101"), ("64001", "19104"), ("64001", "19105"),   # 1 cannot reach 0 and 2
        ("64000", "19102"), ("64000", "19103"), ("64002", "19102"), ("64002", "19103"),   # 0 and 2 cannot reach 1
    ])
    assert all(rule[-2:] == ["-j", "DROP"] and rule[:2] == ["-p", "tcp"] for rule in isolation_rules(spec, 1))


def chain_rules(chain: str) -> list[str]:
    done = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True)
    return done.stdout.splitlines() if done.returncode == 0 else []


def output_jumps(chain: str) -> list[str]:
    done = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line.endswith(f"-j {chain}")]


def test_the_chain_is_installed_and_chaos_events_revert_removes_it_from_the_journal(tmp_path):
    why = iptables.usable()
    require("iptables", why is None, why or "")
    sleepers = [subprocess.Popen(SLEEP, group=GID_BASE + n, extra_groups=[]) for n in (0, 1)]
    ports = {n: [free_port(), free_port()] for n in (0, 1)}
    target = Target("cluster", TargetKind.KAFKA_CLUSTER, {"bootstrap": "127.0.0.1:1", "brokers": {
        n: {"process": {"pid": sleepers[n].pid}, "gid": GID_BASE + n, "inter_broker_ports": ports[n]} for n in (0, 1)}})
    cls = fault_type("isolate_broker")
    fault = cls(cls.Params.model_validate({"broker": {"id": 1}}), target)
    path = tmp_path / "journal.json"
    journal = Journal(path, run_id="r1", owner_pid=sleepers[0].pid)
    chain = None
    try:
        journal.add("f0#1", fault)
        fault.inject(FaultContext(run_dir=str(tmp_path), save_state=lambda: journal.add("f0#1", fault), log=lambda m: None,
                                  occurrence_id="f0#1"))
        chain = fault.state["chain"]
        assert chain.startswith(CHAIN_PREFIX) and chain.endswith("-1")
        me, other = GID_BASE + 1, GID_BASE
        expected = [f"-A {chain} -p tcp -m owner --gid-owner {gid} -m tcp --dport {port} -j DROP"
                    for gid, port in [(me, ports[0][0]), (me, ports[0][1]), (other, ports[1][0]), (other, ports[1][1])]]
        assert chain_rules(chain) == [f"-N {chain}", *expected]
        assert output_jumps(chain) == [f"-A OUTPUT -j {chain}"]
        proc = subprocess.run([sys.executable, "-m", "chaos_events.cli", "revert", "--journal", str(path)], cwd=ROOT,
                              env=dict(os.environ), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-2:] == ["reverted f0#1 isolate_broker cluster (broker 1 = broker 1)",
                                                 "reverted 1 fault"]
        assert chain_rules(chain) == [] and output_jumps(chain) == []
        assert chain not in iptables.chains_named(CHAIN_PREFIX)
    finally:
        if chain:
            iptables.remove(chain)
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def test_preflight_refuses_a_broker_whose_process_runs_with_another_gid(tmp_path):
    sleeper = subprocess.Popen(SLEEP)
    try:
        target = Target("cluster", TargetKind.KAFKA_CLUSTER, {"bootstrap": "127.0.0.1:1", "brokers": {
            0: {"process": {"pid": sleeper.pid}, "gid": GID_BASE, "inter_broker_ports": [19093]}}})
        cls = fault_type("isolate_broker")
        found = [p for p in cls.preflight(cls.Params.model_validate({"broker": {"id": 0}}), target) if "broker 0" in p]
        assert found == [f"target 'cluster': broker 0: its process (pid {sleeper.pid}) runs with gid {os.getgid()}, not "
                         f"the declared gid {GID_BASE}; start it with a group of its own (the demo cluster does so as "
                         f"root) or fix `gid:`"]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_preflight_says_when_iptables_is_missing(monkeypatch, tmp_path):
    require("root", os.geteuid() == 0, "iptables.usable() tells a missing iptables only as root (it says 'needs root' first)")
    monkeypatch.setenv("PATH", str(tmp_path))     # an empty directory: no iptables on PATH
    target = Target("cluster", TargetKind.KAFKA_CLUSTER, {"bootstrap": "127.0.0.1:1", "brokers": {
        0: {"process": {"pid": os.getpid()}, "gid": os.getgid() or 1, "inter_broker_ports": [19093]}}})
    cls = fault_type("isolate_broker")
    found = cls.preflight(cls.Params.model_validate({"broker": {"id": 0}}), target)
    assert found[0] == "isolate_broker needs iptables: iptables is not installed (apt-get install iptables)"
