"""One broker of the compose stack's Apache Kafka cluster, in a container of its own (images/kafka/).

    python -m chaos_events.demo.kafka_node run        # the container's command: format once, then exec the broker
    python -m chaos_events.demo.kafka_node ready      # exit 0 when this broker answers and sees every broker
    python -m chaos_events.demo.kafka_node topics T…  # one shot: wait for every broker, create topics T (RF 3,
                                                      # min ISR 2), wait until every partition is in sync
The brokers have no Docker healthcheck on purpose (a scenario pauses them, and runc cannot freeze a container
while `docker exec` starts a healthcheck in it: "unable to freeze"); the `topics` one shot is the stack's gate.

The broker is the local cluster's (chaos_events.demo.kafka_cluster), so the properties, JVM options and topic
settings are the same in containers and as local processes: this module only maps the environment to that
cluster's ports and runs one node of it. Environment (docker-compose.locust.yml sets all of it):
    CHAOS_KAFKA_NODE                 this broker's number, 0..2
    CHAOS_KAFKA_CLUSTER_ID           the KRaft cluster id every broker formats with
    CHAOS_KAFKA_{N}_PORT, _REPL_PORT, _CONTROLLER_PORT, _ROUTE_PORT   for every broker N (all brokers need all)
    CHAOS_KAFKA_DIR                  its data and config (default /var/lib/chaos-kafka; the container's own disk,
                                     so a killed broker that the revert starts again keeps its log)
Imports the standard library and chaos_events.demo.{kafka_cluster,kafka_dist}; confluent_kafka lazily (through
kafka_cluster). Never locust or gevent.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from chaos_events.demo import kafka_cluster
from chaos_events.demo.kafka_cluster import BROKERS, ClusterError, KafkaCluster, part_name
from chaos_events.errors import ChaosError

DEFAULT_DIR = "/var/lib/chaos-kafka"
BROKERS_TIMEOUT_S = 240.0  # three JVMs starting side by side on a busy 2-core machine
# Port key suffix of kafka_cluster (kafka_N, kafka_N_repl, ...) -> environment variable suffix.
PORT_ENV = {"": "PORT", "_repl": "REPL_PORT", "_controller": "CONTROLLER_PORT", "_route": "ROUTE_PORT"}


class NodeError(ChaosError):
    """The environment does not describe a broker, or the broker could not be formatted or started."""


def ports_from_env(env: dict[str, str], brokers: int = BROKERS) -> dict[str, int]:
    """kafka_cluster's port keys for every broker, read from CHAOS_KAFKA_{N}_* variables (pure)."""
    ports, missing = {}, []
    for n in range(brokers):
        for suffix, name in PORT_ENV.items():
            var = f"CHAOS_KAFKA_{n}_{name}"
            value = env.get(var, "")
            if not value.isdigit():
                missing.append(f"{var}={value!r}" if value else var)
                continue
            ports[f"kafka_{n}{suffix}"] = int(value)
    if missing:
        raise NodeError(f"the broker's ports are not all set (expected a port number in each): {', '.join(missing)}")
    return ports


class RemoteCluster(KafkaCluster):
    """The cluster as one container sees it: the other brokers run elsewhere, so a broker is "running" when the
    Admin API lists it, never by a pidfile (the local cluster's test)."""

    def pid(self, n: int) -> int | None:
        try:
            return -1 if n in self._admin().list_topics(timeout=kafka_cluster.ADMIN_TIMEOUT_S).brokers else None
        except Exception:  # KafkaException: nobody answers yet
            return None


def cluster_from_env(env: dict[str, str] | None = None) -> tuple[RemoteCluster, int]:
    env = dict(os.environ if env is None else env)
    node = env.get("CHAOS_KAFKA_NODE", "")
    cluster_id = env.get("CHAOS_KAFKA_CLUSTER_ID", "")
    if len(cluster_id) != 22:
        raise NodeError(f"CHAOS_KAFKA_CLUSTER_ID must be a KRaft cluster id (22 characters of URL-safe base64); got {cluster_id!r}")
    java, libs = kafka_cluster.kafka_dist.require()
    cluster = RemoteCluster(Path(env.get("CHAOS_KAFKA_DIR") or DEFAULT_DIR), ports_from_env(env), java, Path(libs), cluster_id)
    if node and not (node.isdigit() and int(node) < cluster.brokers):
        raise NodeError(f"CHAOS_KAFKA_NODE must be a broker number 0..{cluster.brokers - 1}; got {node!r}")
    return cluster, int(node) if node else -1


def _require_node(n: int) -> int:
    if n < 0:
        raise NodeError("CHAOS_KAFKA_NODE is not set: which broker is this container?")
    return n


def run(cluster: KafkaCluster, n: int) -> int:
    """Write broker n's config, format its log directory the first time, then become the broker (exec)."""
    cluster.directory.mkdir(parents=True, exist_ok=True)
    cluster.properties_path(n).write_text(cluster.properties(n))
    log_dir = cluster.data_root / part_name(n)
    if not (log_dir / "meta.properties").exists():  # a restarted container keeps its formatted log
        argv = [cluster.java, *kafka_cluster.JVM_OPTIONS, f"-Dlog4j2.configurationFile={kafka_cluster.LOG4J2}",
                "-cp", f"{cluster.libs}/*", "kafka.tools.StorageTool", "format", "-t", cluster.cluster_id,
                "-c", str(cluster.properties_path(n))]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise NodeError(f"kafka storage format of {part_name(n)} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-800:]}")
    argv = cluster.argv(n)
    print(f"{part_name(n)}: {' '.join(argv)}", flush=True)
    os.execv(argv[0], argv)
    return 0  # not reached


def ready(cluster: KafkaCluster, n: int) -> str | None:
    """None when broker n answers on its own client port and lists every broker of the cluster; else why not."""
    port = cluster.ports[f"kafka_{n}"]
    try:
        md = cluster._admin(f"127.0.0.1:{port}").list_topics(timeout=kafka_cluster.ADMIN_TIMEOUT_S)
    except Exception as exc:  # KafkaException: not answering yet
        return f"{part_name(n)} does not answer on 127.0.0.1:{port} yet ({exc})"
    # Not md.orig_broker_id: the answer may come over a connection to another broker (clients learn the others
    # from the first answer), so "something answers on broker n's own port and lists all" is the test.
    seen = set(md.brokers)
    if seen != set(range(cluster.brokers)):
        return f"{part_name(n)} answered with brokers {sorted(seen)}, expected {list(range(cluster.brokers))}"
    return None


def wait_for_brokers(cluster: KafkaCluster, timeout_s: float = BROKERS_TIMEOUT_S, log=print) -> None:
    """Until every broker answers on its own client port and lists all of them (ClusterError after timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        problems = [p for p in (ready(cluster, n) for n in range(cluster.brokers)) if p]
        if not problems:
            log(f"all {cluster.brokers} brokers answer and see each other")
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"the Kafka brokers are not all ready within {timeout_s:g} s: {'; '.join(problems)}")
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command not in ("run", "ready", "topics") or (command == "topics" and len(args) < 2):
        print("usage: python -m chaos_events.demo.kafka_node {run | ready | topics TOPIC...}", file=sys.stderr)
        return 2
    try:
        cluster, n = cluster_from_env()
        if command == "run":
            return run(cluster, _require_node(n))
        if command == "ready":
            problem = ready(cluster, _require_node(n))
            print(f"unhealthy: {problem}" if problem else "healthy")
            return 1 if problem else 0
        wait_for_brokers(cluster)
        cluster.create_topics({name: {} for name in args[1:]}, timeout_s=60.0)
        print(f"topics {', '.join(args[1:])}: every partition has a leader and all {cluster.brokers} replicas in sync")
        return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
