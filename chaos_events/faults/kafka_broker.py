"""Service faults aimed at a broker of a `kafka_cluster` target by its role: the role is resolved when the fault is
injected, and the resolved broker is pinned in the fault's state (so the journal's revert, also after a SIGKILL,
acts on the same broker).

Must not import locust, gevent, docker or prometheus_client. The admin API is reached through
chaos_events.backends.kafka_admin only.

What a fault on a kafka_cluster target records (in its state, and on its events in the record and the report):
- `broker_id`: the broker the role named at inject; `role`: the role in words ("leader of events/0");
- `leader_before` (leader roles): the partition's leader at inject, that is the broker hit;
- `leader_after` (leader roles): the partition's leader as the cluster reports it at revert, read before the broker
  is started again (waited for up to kafka_admin.TIMEOUT_S while an election leaves it without one; -1: none). It is
  not waited on to change: that would keep the fault on longer than planned;
- `controller_before` / `controller_after` (the controller role): the active KRaft controller, the same way
  (backends/kafka_quorum.py: the admin API's "controller" is a random broker in KRaft mode).

Example (scenario):
    faults: [{at: 8s, for: 8s, fault: kill, target: cluster, broker: {leader: {topic: events, partition: 0}}}]
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from chaos_events.backends import kafka_admin, kafka_quorum
from chaos_events.errors import InjectionError
from chaos_events.faults.base import FaultContext, FaultParams
from chaos_events.scenario.kafka_roles import BrokerRole, role_problems
from chaos_events.scenario.model import Target, TargetKind

OBSERVED = ("broker_id", "role", "leader_before", "leader_after", "controller_before", "controller_after")


class ServiceParams(FaultParams):
    """Parameters every service fault takes: on a kafka_cluster target, which broker."""

    broker: BrokerRole | None = Field(None, description="on a kafka_cluster target: which broker, by role: "
                                                        "{leader: {topic: events, partition: 0}}, {controller: true} "
                                                        "or {id: 2}")

    @model_serializer(mode="wrap")
    def _without_unset_broker(self, handler: Any) -> Any:
        """No `broker: None` in dumps (descriptions, journal entries) of faults on plain process or container targets."""
        dumped = handler(self)
        if isinstance(dumped, dict) and dumped.get("broker", 0) is None:
            dumped.pop("broker")
        return dumped


def plan_problems(params: Any, target: Target, needs_start: bool, reason: str) -> list[str]:
    """The role against the target; on a kafka_cluster, every mapped process broker must be startable when
    the fault starts it (any of them may be the one the role names)."""
    problems = role_problems(getattr(params, "broker", None), target)
    if problems or target.kind is not TargetKind.KAFKA_CLUSTER or not needs_start:
        return problems
    role = params.broker
    ids = [role.id] if role.id is not None else target.spec.broker_ids()
    lacking = [str(n) for n in ids if (s := target.spec.brokers[n]).process is not None and not s.process.start_argv()]
    if lacking:
        return [f"target {target.name!r}: broker{'s' if len(lacking) > 1 else ''} {', '.join(lacking)} of the brokers: "
                f"map {'have' if len(lacking) > 1 else 'has'} no `restart` or `command` to start the process; {reason}"]
    return []


def role_preflight(params: Any, target: Target) -> list[str]:
    """A leader role's topic and partition exist on the cluster now; a controller role's quorum answers. An
    unreachable cluster is reported once, by the target's own check (scenario/preflight.py), not for each fault."""
    role = getattr(params, "broker", None)
    if target.kind is not TargetKind.KAFKA_CLUSTER or role is None or role.watched() is None:
        return []
    try:
        snapshot = kafka_admin.cluster_snapshot(target.spec.bootstrap)
    except kafka_admin.KafkaAdminError:
        return []
    try:
        if role.leader is not None:
            snapshot.leader(role.leader.topic, role.leader.partition)
        else:
            kafka_quorum.active_controller(target.spec.bootstrap)
    except (kafka_admin.KafkaAdminError, kafka_quorum.QuorumError) as exc:
        return [f"'broker': {exc}" if role.leader is not None else f"'broker': cannot tell the active controller: {exc}"]
    return []


def broker_target(target: Target, params: Any, state: dict, ctx: FaultContext) -> Target:
    """The broker the role names, as a process or container target. Resolved once, at the first call (the inject),
    through the admin API, and pinned in `state` (saved before the caller's first side effect)."""
    spec, role = target.spec, params.broker
    if "broker_id" not in state:
        broker_id = _resolve(spec.bootstrap, role)
        if broker_id not in spec.brokers:   # nothing pinned: the revert that follows has nothing to do
            raise InjectionError(f"target {target.name!r}: the {role.describe()} is broker {broker_id}, which the "
                                 f"brokers: map does not cover (it maps: {', '.join(map(str, spec.broker_ids()))})")
        state.update(broker_id=broker_id, role=role.describe())
        if role.watched():
            state[f"{role.watched()}_before"] = broker_id
        ctx.save_state()
        ctx.log(f"chaos-events: {target.name}: the {role.describe()} is broker {broker_id}")
    return spec.brokers[state["broker_id"]].target(target.name, state["broker_id"])


def _resolve(bootstrap: str, role: BrokerRole) -> int:
    if role.id is not None:
        return role.id
    try:
        if role.controller:
            return kafka_quorum.active_controller(bootstrap)
        leader = kafka_admin.cluster_snapshot(bootstrap).leader(role.leader.topic, role.leader.partition)
    except (kafka_admin.KafkaAdminError, kafka_quorum.QuorumError) as exc:
        raise InjectionError(f"cannot resolve the {role.describe()}: {exc}") from None
    if leader < 0:
        raise InjectionError(f"the {role.describe()}: the partition has no leader right now")
    return leader


def note_after(target: Target, params: Any, state: dict, ctx: FaultContext) -> None:
    """At revert, once: who holds the role now (the partition's leader, or the active controller)."""
    role = getattr(params, "broker", None)
    if target.kind is not TargetKind.KAFKA_CLUSTER or role is None or role.watched() is None:
        return
    key = f"{role.watched()}_after"
    if "broker_id" not in state or key in state:
        return
    try:
        state[key] = _holder_now(target.spec.bootstrap, role)
    except Exception as exc:  # noqa: BLE001  (an observation must never stop the revert it precedes)
        ctx.log(f"chaos-events: {target.name}: could not read the {role.describe()} at revert: {exc}")
        state[key] = -1
    ctx.save_state()
    ctx.log(f"chaos-events: {target.name}: the {role.describe()} is now broker {state[key]}")


def _holder_now(bootstrap: str, role: BrokerRole) -> int:
    if role.leader is not None:
        return kafka_admin.wait_leader(bootstrap, role.leader.topic, role.leader.partition, wait_s=kafka_admin.TIMEOUT_S)
    try:
        return kafka_quorum.active_controller(bootstrap, timeout_s=kafka_admin.TIMEOUT_S)
    except kafka_quorum.QuorumError:
        return -1


def observations(state: dict) -> dict:
    """What the record and the report show of a resolved role."""
    return {key: state[key] for key in OBSERVED if key in state}
