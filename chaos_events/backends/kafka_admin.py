"""What a Kafka cluster says about itself now, through the admin API: its brokers, its topics, and who leads what.

A thin adapter over confluent_kafka's AdminClient (imported lazily). Used when a fault resolves a broker role at
inject time (faults/kafka_broker.py) and by the pre-run checks (scenario/preflight.py). Every call is bounded by a
timeout; an unreachable cluster is a KafkaAdminError naming the bootstrap servers, never a hang.

Example:
    snapshot = cluster_snapshot("127.0.0.1:19092")
    snapshot.brokers == (0, 1, 2) and snapshot.leader("events", 0) in snapshot.brokers
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from chaos_events.errors import ChaosError

TIMEOUT_S = 5.0          # how long a metadata request may take before the cluster counts as unreachable


class KafkaAdminError(ChaosError):
    """The cluster did not answer, or does not have what was asked for."""


class _QuietLog:
    """librdkafka's own log lines ("Connect to ... failed") would flood the run's output while a broker is down."""

    def log(self, *_args: Any) -> None:
        pass


@dataclass(frozen=True)
class ClusterSnapshot:
    """Broker ids, and per topic the partitions' leaders (-1: none right now), as the cluster reported them."""

    bootstrap: str
    brokers: tuple[int, ...]
    leaders: dict[str, dict[int, int]] = field(default_factory=dict)

    def leader(self, topic: str, partition: int) -> int:
        """The leader of `partition` of `topic` (-1: none right now); KafkaAdminError when it does not exist."""
        partitions = self.leaders.get(topic)
        if partitions is None:
            listed = ", ".join(sorted(t for t in self.leaders if not t.startswith("__"))) or "(none)"
            raise KafkaAdminError(f"topic {topic!r} not found on {self.bootstrap}; topics: {listed}")
        if partition not in partitions:
            raise KafkaAdminError(f"topic {topic!r} has no partition {partition} on {self.bootstrap} "
                                  f"(partitions: 0-{max(partitions)})" if partitions else
                                  f"topic {topic!r} has no partitions on {self.bootstrap}")
        return partitions[partition]


def cluster_snapshot(bootstrap: str, timeout_s: float = TIMEOUT_S) -> ClusterSnapshot:
    """The cluster's brokers and every topic's partition leaders, now."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _QuietLog(),
                         "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000))})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception:  # KafkaException: no broker answered in time (its wording varies: transport failure, timeout)
        raise KafkaAdminError(f"Kafka cluster at {bootstrap} not reachable: no broker answered the admin API "
                              f"within {timeout_s:g} s") from None
    leaders = {name: {p: m.leader for p, m in topic.partitions.items()}
               for name, topic in metadata.topics.items() if topic.error is None}
    return ClusterSnapshot(bootstrap, tuple(sorted(metadata.brokers)), leaders)


def wait_leader(bootstrap: str, topic: str, partition: int, differs_from: int | None = None,
                wait_s: float = TIMEOUT_S, snapshot: Callable[[str], ClusterSnapshot] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> int:
    """The partition's leader once it has one (and, with `differs_from`, once it is another broker); after
    `wait_s`, whatever the cluster says last. -1: no leader, or the cluster did not answer (not asked again then:
    it already took TIMEOUT_S)."""
    snapshot = snapshot or cluster_snapshot
    deadline = time.monotonic() + wait_s
    while True:
        try:
            leader = snapshot(bootstrap).leader(topic, partition)
        except KafkaAdminError:
            return -1
        if leader >= 0 and (differs_from is None or leader != differs_from):
            return leader
        if time.monotonic() >= deadline:
            return leader
        sleep(0.5)
