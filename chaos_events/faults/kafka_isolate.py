"""isolate_broker: cut one broker of a `kafka_cluster` target off from the other brokers (replication and KRaft
quorum) while clients still reach it on its client port.

Must not import locust, gevent, docker or prometheus_client. iptables is reached through chaos_events.backends.iptables
only, the admin API through faults/kafka_broker.py.

How: every broker process runs with a group id of its own (`gid:` of its brokers: entry; the demo cluster launches
broker N with gid 64000+N when it runs as root), and iptables' owner match tells a socket's packets by that gid, as
all brokers send from 127.0.0.1. The fault puts, in a chain of its own jumped to from OUTPUT
(CHAOS-ISOLATE-<occurrence>-<broker>), DROP rules for TCP
- from the isolated broker's gid to every other broker's `inter_broker_ports` (it can neither fetch nor vote);
- from each other broker's gid (named one by one: an inverted gid match misbehaves on packets without a full socket,
  such as SYN-ACKs) to the isolated broker's `inter_broker_ports`.
Client ports are not touched. The chain's name and its rules are in the fault's state (journalled before iptables is
called), so revert, also from the journal after a SIGKILL, deletes the jump, flushes and deletes the chain.

Example (scenario):
    faults: [{at: 8s, for: 15s, fault: isolate_broker, target: cluster, broker: {leader: {topic: events, partition: 0}}}]
"""
from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from chaos_events.backends import iptables
from chaos_events.backends.process import is_alive, resolve_pid
from chaos_events.errors import ChaosError, InjectionError, RevertError
from chaos_events.faults.base import Fault, FaultContext, register
from chaos_events.faults.kafka_broker import ServiceParams, broker_target, note_after, observations, role_preflight
from chaos_events.scenario.kafka_roles import role_problems
from chaos_events.scenario.model import Target, TargetKind

CHAIN_PREFIX = "CHAOS-ISOLATE-"


class IsolateParams(ServiceParams):
    """Which broker to isolate (`broker:`, its role); nothing else."""


def isolation_rules(spec: Any, broker_id: int) -> list[list[str]]:
    """The DROP rules (argv after `-A CHAIN`) that cut broker `broker_id` off from the others. Pure."""
    me = spec.brokers[broker_id]
    rules = []
    for other_id in spec.broker_ids():
        if other_id == broker_id:
            continue
        other = spec.brokers[other_id]
        rules += [_drop(me.gid, port) for port in other.inter_broker_ports]
        rules += [_drop(other.gid, port) for port in me.inter_broker_ports]
    return rules


def _drop(gid: int, port: int) -> list[str]:
    return ["-p", "tcp", "-m", "owner", "--gid-owner", str(gid), "--dport", str(port), "-j", "DROP"]


def chain_name(occurrence: str, broker_id: int) -> str:
    digest = hashlib.sha256(occurrence.encode()).hexdigest()[:8]
    return f"{CHAIN_PREFIX}{digest}-{broker_id}"


def process_gid(pid: int) -> int | None:
    """The real gid of a process (the Gid: line of /proc/PID/status); None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Gid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def gid_problem(target: Target, broker_id: int) -> str | None:
    """Why broker `broker_id`'s process does not run now with its declared gid; None when it does."""
    entry = target.spec.brokers[broker_id]
    name = f"{target.name}/broker-{broker_id}"
    try:
        pid = resolve_pid(entry.process, name)
    except ChaosError as exc:
        return f"broker {broker_id}: {exc}"
    gid = process_gid(pid) if is_alive(pid) else None
    if gid is None:
        return f"broker {broker_id}: its process (pid {pid}) is not running"
    if gid != entry.gid:
        return (f"broker {broker_id}: its process (pid {pid}) runs with gid {gid}, not the declared gid {entry.gid}; "
                f"start it with a group of its own (the demo cluster does so as root) or fix `gid:`")
    return None


@register
class IsolateBroker(Fault):
    type_name: ClassVar[str] = "isolate_broker"
    Params = IsolateParams
    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset({TargetKind.KAFKA_CLUSTER})
    summary: ClassVar[str] = ("cut one broker off from the other brokers (their replication and quorum ports, by "
                              "iptables owner gid; needs root) while clients still reach it")

    @classmethod
    def check_plan(cls, params: Any, target: Target) -> list[str]:
        if target.kind is not TargetKind.KAFKA_CLUSTER:
            return [f"target {target.name!r} is a {target.kind.value} target; isolate_broker needs a kafka_cluster"]
        problems = role_problems(params.broker, target)
        for broker_id in target.spec.broker_ids():
            entry = target.spec.brokers[broker_id]
            missing = [key for key in ("gid", "inter_broker_ports") if getattr(entry, key) is None]
            if entry.process is None:
                problems.append(f"target {target.name!r}: broker {broker_id} of the brokers: map is a container; "
                                f"isolate_broker needs every broker as a local process (it tells them apart by gid)")
            elif missing:
                problems.append(f"target {target.name!r}: broker {broker_id} of the brokers: map has no "
                                f"{' and no '.join(repr(k) for k in missing)}; isolate_broker needs every broker's "
                                f"`gid: <group id its process runs with>` and `inter_broker_ports: [<replication "
                                f"port>, <controller port>]`")
        gids = [e.gid for e in target.spec.brokers.values() if e.gid is not None]
        if len(set(gids)) != len(gids):
            problems.append(f"target {target.name!r}: brokers share a gid ({', '.join(map(str, sorted(gids)))}); "
                            f"isolate_broker needs a group id of its own for each broker")
        return problems

    @classmethod
    def preflight(cls, params: Any, target: Target) -> list[str]:
        why = iptables.usable()
        problems = [f"isolate_broker needs iptables: {why}"] if why else []
        for broker_id in target.spec.broker_ids():
            problem = gid_problem(target, broker_id)
            if problem:
                problems.append(f"target {target.name!r}: {problem}")
        return problems + role_preflight(params, target)

    def inject(self, ctx: FaultContext) -> None:
        problems = self.check_plan(self.params, self.target)
        if problems:
            raise InjectionError(f"{self.type_name}: {problems[0]}")
        broker_target(self.target, self.params, self.state, ctx)    # resolves the role, pins broker_id, saves
        broker_id = self.state["broker_id"]
        problem = gid_problem(self.target, broker_id)
        if problem:
            raise InjectionError(f"{self.type_name} {self.target.name}: {problem}")
        chain = chain_name(self.own_id(ctx), broker_id)
        rules = isolation_rules(self.target.spec, broker_id)
        self.state.update(chain=chain, rules=rules)
        ctx.save_state()
        iptables.install(chain, rules)
        ctx.log(f"chaos-events: {self.target.name}: broker {broker_id} cut off from the other brokers "
                f"(iptables chain {chain}, {len(rules)} rules)")

    def revert(self, ctx: FaultContext) -> None:
        if "chain" not in self.state:
            return
        note_after(self.target, self.params, self.state, ctx)
        iptables.remove(self.state["chain"])

    def verify_reverted(self, ctx: FaultContext) -> None:
        chain = self.state.get("chain")
        if chain and iptables.chain_exists(chain, RevertError):
            raise RevertError(f"{self.type_name} {self.target.name}: iptables chain {chain} is still there")

    def observations(self) -> dict:
        return observations(self.state) | ({"chain": self.state["chain"]} if "chain" in self.state else {})

    def describe(self) -> str:
        aimed = self.params.broker.describe() if self.params.broker else "?"
        aimed += f" = broker {self.state['broker_id']}" if "broker_id" in self.state else ""
        return f"{self.type_name} {self.target.name} ({aimed})"
