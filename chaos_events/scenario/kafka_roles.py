"""A broker of a `kafka_cluster` target (scenario/targets.py) named by its role: a partition's leader, the active
controller, or an id.

Pure: standard library and pydantic. The role is resolved through the admin API only when the fault is injected
(chaos_events.backends.kafka_admin); what is checked here is the shape, and what can be told from the file alone:
that a broker id named in a role is in the `brokers:` map. Whether the topic, the partition and every broker of the
cluster are known is the pre-run check's job (scenario/preflight.py), since it asks the cluster.

Example (scenario):
    targets:
      cluster:
        kafka_cluster:
          bootstrap: "${DEMO_KAFKA_BOOTSTRAP}"
          brokers:
            0: {process: {pidfile: .run/kafka-0.pid, restart: [python, -m, chaos_events.demo, start-part, kafka-0]}}
            1: {container: {name: kafka-1}}
    faults:
      - {at: 8s, for: 6s, fault: kill, target: cluster, broker: {leader: {topic: events, partition: 0}}}
      - {at: 30s, for: 6s, fault: restart, target: cluster, broker: {controller: true}}
      - {at: 50s, for: 6s, fault: pause, target: cluster, broker: {id: 1}}
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer, model_validator

from chaos_events.scenario.fields import Flag, ScenarioModel, Text, WholeNumber, fail, shown
from chaos_events.scenario.targets import BrokerId, Target, TargetKind, exactly_one_key, known_keys

ROLE_EXAMPLE = "{leader: {topic: events, partition: 0}}, {controller: true} or {id: 2}"
ROLES = ("leader", "controller", "id")


class LeaderRole(ScenarioModel):
    """The broker that leads `partition` of `topic` when the fault starts."""

    topic: Text
    partition: WholeNumber = Field(0, ge=0, description="the partition whose leader is meant")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise fail(f"expected a mapping like {{topic: events, partition: 0}}; got {shown(data)}")
        return known_keys(data, ("topic", "partition"))


class BrokerRole(ScenarioModel):
    """Which broker of a `kafka_cluster` target a service fault hits: exactly one of `leader`, `controller` or `id`."""

    leader: LeaderRole | None = Field(None, description="the leader of a topic's partition, when the fault starts")
    controller: Flag | None = Field(None, description="true: the active KRaft controller, when the fault starts")
    id: BrokerId | None = Field(None, description="a broker id")

    @model_validator(mode="before")
    @classmethod
    def _one_role(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise fail(f"expected a role like {ROLE_EXAMPLE}; got {shown(data)}")
        exactly_one_key(data, ROLES)
        if "controller" in data and data["controller"] is not True:
            raise fail(f"'controller': only true names a broker (the active controller); got {shown(data['controller'])}")
        return data

    @model_serializer(mode="wrap")
    def _the_role_only(self, handler: Any) -> Any:
        """Dumps (the journal's) hold the one role given, so that they validate again."""
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if v is not None} if isinstance(dumped, dict) else dumped

    def describe(self) -> str:
        if self.leader is not None:
            return f"leader of {self.leader.topic}/{self.leader.partition}"
        if self.controller:
            return "active controller"
        return f"broker {self.id}"

    def watched(self) -> str | None:
        """What the record follows before and after the fault: 'leader' or 'controller' (an id role: nothing)."""
        return "leader" if self.leader is not None else "controller" if self.controller else None


def role_problems(role: BrokerRole | None, target: Target) -> list[str]:
    """What the file alone tells about a fault's `broker:` on its target (pure; messages for check_plan)."""
    if target.kind is not TargetKind.KAFKA_CLUSTER:
        if role is None:
            return []
        return [f"'broker': names a broker of a kafka_cluster target; target {target.name!r} is a {target.kind.value} target"]
    if role is None:
        return [f"missing parameter 'broker': target {target.name!r} is a kafka_cluster; name the broker by its role, "
                f"like {ROLE_EXAMPLE}"]
    ids = target.spec.broker_ids()
    if role.id is not None and role.id not in ids:
        return [f"'broker': broker {role.id} is not in the brokers: map of target {target.name!r} "
                f"(it maps: {', '.join(map(str, ids))})"]
    return []
