"""Which kind of Kafka broker the harness talks to: Apache Kafka (and brokers with its semantics) or Tansu.

The harness works around a few Tansu bugs (see the "Tansu workaround" blocks in observe/ledger.py and
locust_plugin/users.py); against Apache Kafka it must behave as against a real Kafka, so those places ask here.
Must not import locust, gevent, docker or prometheus_client; `detect` imports confluent_kafka lazily and blocks
(under gevent, call it from a native thread).

The kind is $CHAOS_KAFKA_BROKER_KIND when set to "tansu" or "kafka" ("auto", or unset, means: ask the cluster),
else it follows from the cluster id in the metadata: Tansu reports "tansu_cluster" by default, while an Apache Kafka
(KRaft) cluster id is a base64 UUID. Any other id is taken as Kafka semantics.

Example:
    from_cluster_id("tansu_cluster") is BrokerKind.TANSU; from_cluster_id("MkU3OEVBNTcwNTJENDM2Qk") is BrokerKind.KAFKA
"""
from __future__ import annotations

import enum
import os
from typing import Any

__all__ = ["BrokerKind", "ENV", "configured", "detect", "from_cluster_id"]

ENV = "CHAOS_KAFKA_BROKER_KIND"


class BrokerKind(enum.Enum):
    KAFKA = "kafka"        # Apache Kafka semantics: no workaround
    TANSU = "tansu"        # Tansu: the harness's Tansu workarounds apply
    UNKNOWN = "unknown"    # not configured, and the cluster did not answer (yet)


def configured() -> BrokerKind | None:
    """The kind $CHAOS_KAFKA_BROKER_KIND sets, or None for "auto"/unset; ValueError for anything else."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    try:
        return BrokerKind(value)
    except ValueError:
        raise ValueError(f"invalid ${ENV}: expected one of auto, kafka, tansu; got {value!r}") from None


def from_cluster_id(cluster_id: str | None) -> BrokerKind:
    """The configured kind, else the kind a metadata response's cluster id tells."""
    kind = configured()
    if kind is not None:
        return kind
    if not cluster_id:
        return BrokerKind.UNKNOWN
    return BrokerKind.TANSU if cluster_id.lower().startswith("tansu") else BrokerKind.KAFKA


class _Quiet:
    def log(self, *_args: Any) -> None:
        pass


def detect(bootstrap: str, timeout_s: float = 5.0) -> BrokerKind:
    """Blocking: the configured kind, else ask the cluster at `bootstrap` for its id; UNKNOWN when it does not answer."""
    kind = configured()
    if kind is not None:
        return kind
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap, "logger": _Quiet()}).list_topics(timeout=timeout_s)
    except KafkaException:
        return BrokerKind.UNKNOWN
    return from_cluster_id(metadata.cluster_id)
