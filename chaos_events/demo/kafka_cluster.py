"""A three-broker Apache Kafka cluster (KRaft, combined mode) as local processes on 127.0.0.1.

Imports the standard library, chaos_events.errors and chaos_events.demo.{procs,kafka_dist}; confluent_kafka lazily,
for the admin API (readiness, topics, leaders). Never locust or gevent. Each broker is `java -cp LIBS/* kafka.Kafka
kafka-N.properties`; the jars come from `python -m chaos_events.demo fetch-kafka` (see kafka_dist).

Files in `directory`, per broker N: kafka-N.properties, kafka-N.pid, logs/kafka-N.log and kafka-data/kafka-N/ (the
log configuration is kafka/log4j2.properties beside this module). Every node is a broker and a controller of a
static three-voter quorum, with three listeners on ports of its own:
- CLIENT (port key kafka_N) for clients. It advertises kafka_N_route when that port is given (the demo's proxy route
  to broker N), so every client connection passes through the proxy; otherwise it advertises itself.
- REPLICATION (kafka_N_repl), the inter-broker listener: followers fetch from leaders here, never on the client
  port, so a broker can be cut off from the others (on this port) while clients still reach it.
- CONTROLLER (kafka_N_controller): the KRaft quorum.
As root, broker N runs with group id 64000+N (uid unchanged), which isolate_broker's iptables rules tell apart.
`start()` formats the storage with one cluster id, starts the three JVMs, waits until each broker answers on its own
client port and the metadata lists all three, then creates the topics (replication factor 3, min.insync.replicas 2)
and waits for their leaders. `start_broker(n)` restarts one broker with its own properties and data (what a kill
fault's revert runs, through `python -m chaos_events.demo start-part kafka-N`). `stop()` SIGTERMs every broker,
SIGKILLs what is left after a grace, and removes the data directory.
"""
from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_events.backends.kafka_quorum import recv_exactly
from chaos_events.errors import ChaosError
from chaos_events.demo import kafka_dist, procs

BROKERS = 3
PARTITIONS = 3
# Small heaps, the serial collector and C1 only: three JVMs start in seconds and stay light on a 2-core machine.
JVM_OPTIONS = ("-Xms256m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
               "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
START_TIMEOUT_S = 120.0      # three JVMs, storage format and a quorum on a busy 2-core machine
RESTART_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0         # one broker: time for a controlled shutdown (its leaderships move first)
CLUSTER_STOP_GRACE_S = 5.0  # all brokers: the last ones cannot shut down cleanly without a quorum, and the data goes
ADMIN_TIMEOUT_S = 2.0
# As root, broker N runs with group id BROKER_GID_BASE + N (uid root: it still reads the jars under ~/.cache), so
# that iptables' owner match tells its packets apart from the other brokers' (faults/kafka_isolate.py).
BROKER_GID_BASE = 64000
# Port keys of broker N and what each listener is for (error messages name both).
LISTENERS = {"": "Kafka client listener", "_repl": "Kafka replication listener", "_controller": "KRaft controller listener"}
DEFAULT_TOPIC_CONFIG = {"min.insync.replicas": "2"}
LOG4J2 = Path(__file__).resolve().parent / "kafka" / "log4j2.properties"


class ClusterError(ChaosError):
    """The Apache Kafka cluster could not start, a broker did not become ready, or a port is taken."""


def part_name(n: int) -> str:
    return f"kafka-{n}"


def broker_ports(n: int) -> list[str]:
    """The port keys a broker listens on (its route, when any, belongs to the proxy)."""
    return [f"kafka_{n}{suffix}" for suffix in LISTENERS]


def port_owners(brokers: int = BROKERS) -> dict[str, tuple[str, str]]:
    """Port key -> (part, what it is), for the brokers' own listeners."""
    return {f"kafka_{n}{suffix}": (part_name(n), what) for n in range(brokers) for suffix, what in LISTENERS.items()}


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def api_versions_ok(port: int, timeout_s: float = 1.0) -> bool:
    """True when a Kafka broker on 127.0.0.1:port answers ApiVersions (v0) with no error. Standard library only, and
    only this broker is asked (a client library would also ask the others, which may still list a killed broker)."""
    correlation = 0x43484145
    client = b"chaos-events"
    body = struct.pack(">hhih", 18, 0, correlation, len(client)) + client
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = recv_exactly(sock, 4)
            reply = recv_exactly(sock, min(struct.unpack(">i", head)[0], 1 << 16))
    except (OSError, struct.error):
        return False
    return len(reply) >= 6 and struct.unpack(">ih", reply[:6]) == (correlation, 0)


class _QuietLog:
    """librdkafka logger for the admin clients: a broker that is still starting refuses connections, which is expected."""

    def log(self, *_args: Any) -> None:
        pass


@dataclass
class KafkaCluster:
    """Three brokers' facts and processes. Invariant: `ports` holds every key of `broker_ports(n)` for each broker.

    Example:
        cluster = KafkaCluster.create(Path(".run/k"), topics={"events": {}}); cluster.start()
        cluster.leader("events", 0) in (0, 1, 2); cluster.stop()
    """

    directory: Path
    ports: dict[str, int]
    java: str
    libs: Path
    cluster_id: str
    topics: dict[str, dict[str, str]] = field(default_factory=dict)
    brokers: int = BROKERS
    _procs: dict[int, subprocess.Popen] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def create(cls, directory: Path, ports: dict[str, int] | None = None, topics: dict[str, dict[str, str]] | None = None,
               brokers: int = BROKERS) -> "KafkaCluster":
        """A new cluster's facts: Java and the jars checked (KafkaSetupError), free ports for missing keys, a cluster id."""
        java, libs = kafka_dist.require()
        chosen = dict(ports or {})
        taken = set(chosen.values())
        for n in range(brokers):
            for key in broker_ports(n):
                if chosen.get(key) is None:
                    chosen[key] = procs.free_port(taken)
                    taken.add(chosen[key])
        return cls(Path(directory).resolve(), chosen, java, Path(libs), new_cluster_id(), dict(topics or {}), brokers)

    def to_json(self) -> dict:
        return {"java": self.java, "libs": str(self.libs), "cluster_id": self.cluster_id, "topics": self.topics, "brokers": self.brokers}

    @classmethod
    def from_json(cls, directory: Path, ports: dict[str, int], data: dict) -> "KafkaCluster":
        return cls(Path(directory).resolve(), dict(ports), data["java"], Path(data["libs"]), data["cluster_id"],
                   dict(data.get("topics", {})), int(data.get("brokers", BROKERS)))

    # -- facts --------------------------------------------------------------------------------------------
    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(part_name(n) for n in range(self.brokers))

    def number(self, part: str) -> int:
        """kafka-2 -> 2; ClusterError for a name that is not one of this cluster's brokers."""
        if part not in self.parts:
            raise ClusterError(f"unknown broker {part!r}; expected one of: {', '.join(self.parts)}")
        return int(part.rsplit("-", 1)[1])

    def pidfile(self, n: int) -> Path:
        return self.directory / f"{part_name(n)}.pid"

    def log_path(self, n: int) -> Path:
        return self.directory / "logs" / f"{part_name(n)}.log"

    def properties_path(self, n: int) -> Path:
        return self.directory / f"{part_name(n)}.properties"

    @property
    def data_root(self) -> Path:
        return self.directory / "kafka-data"

    def advertised_port(self, n: int) -> int:
        return self.ports.get(f"kafka_{n}_route") or self.ports[f"kafka_{n}"]

    @property
    def bootstrap(self) -> str:
        """What clients use: the advertised client addresses (the proxy routes, in the demo)."""
        return ",".join(f"127.0.0.1:{self.advertised_port(n)}" for n in range(self.brokers))

    @property
    def direct_bootstrap(self) -> str:
        """The brokers' own client listeners, around any proxy."""
        return ",".join(f"127.0.0.1:{self.ports[f'kafka_{n}']}" for n in range(self.brokers))

    def argv(self, n: int) -> list[str]:
        """Broker n's command line (what its pid runs)."""
        return [self.java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J2}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.properties_path(n))]

    def properties(self, n: int) -> str:
        p = self.ports
        voters = ",".join(f"{i}@127.0.0.1:{p[f'kafka_{i}_controller']}" for i in range(self.brokers))
        rf = min(3, self.brokers)
        lines = {
            "process.roles": "broker,controller",
            "node.id": n,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"CLIENT://127.0.0.1:{p[f'kafka_{n}']},REPLICATION://127.0.0.1:{p[f'kafka_{n}_repl']},"
                         f"CONTROLLER://127.0.0.1:{p[f'kafka_{n}_controller']}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{self.advertised_port(n)},REPLICATION://127.0.0.1:{p[f'kafka_{n}_repl']}",
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "REPLICATION",
            "log.dirs": self.data_root / part_name(n),
            "num.partitions": PARTITIONS,
            "default.replication.factor": rf,
            "min.insync.replicas": min(2, rf),
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": PARTITIONS,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min(2, rf),
            "transaction.state.log.num.partitions": PARTITIONS,
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": 0,       # a consumer that (re)joins gets its partitions at once
            # A killed broker is fenced, and its partitions move, within ~6 s instead of the default 9 s.
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
        }
        return "# Written by chaos_events.demo.kafka_cluster for one demo run.\n" + "".join(f"{k}={v}\n" for k, v in lines.items())

    # -- processes -----------------------------------------------------------------------------------------
    def pid(self, n: int) -> int | None:
        """Broker n's pid when it runs (its pidfile names a live process running its command line)."""
        return procs.running_pid(self.pidfile(n), self.argv(n))

    def start(self) -> None:
        """Format, start all brokers, wait until all are registered, create the topics; stops everything on failure."""
        self._check_ports(range(self.brokers))
        try:
            self._write_config()
            self._format()
            for n in range(self.brokers):
                self._launch(n)
            self._wait_ready(range(self.brokers), START_TIMEOUT_S)
            self._wait_registered(START_TIMEOUT_S)
            self.create_topics()
        except BaseException:
            self.stop()
            raise

    def start_broker(self, n: int) -> int:
        """(Re)start broker n with its own properties and data; waits until it answers and is registered."""
        self.stop_broker(n)
        self._check_ports([n])
        self._launch(n)
        try:
            self._wait_ready([n], RESTART_TIMEOUT_S)
        except BaseException:
            self.stop_broker(n)
            raise
        return self._procs[n].pid

    def stop_broker(self, n: int) -> str:
        """Stop broker n by its pidfile (SIGTERM: a controlled shutdown, then SIGKILL after the grace); keeps its data."""
        return procs.stop_recorded(part_name(n), self.pidfile(n), self.argv(n), self._procs.pop(n, None), STOP_GRACE_S)

    def stop(self) -> dict[str, str]:
        """Stop every broker (SIGTERM all at once, SIGKILL what is left after the grace) and remove the data. Idempotent."""
        pids = {n: self.pid(n) for n in range(self.brokers)}
        for pid in filter(None, pids.values()):
            procs.signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + CLUSTER_STOP_GRACE_S
        for n, pid in pids.items():
            if pid is not None and not procs.wait_dead(pid, self._popen(n, pid), max(0.0, deadline - time.monotonic())):
                procs.signal_group(pid, signal.SIGKILL)
                procs.wait_dead(pid, self._popen(n, pid), 5.0)
        outcomes = {part_name(n): self.stop_broker(n) if pid is None else f"stopped pid {pid}" for n, pid in pids.items()}
        for n in range(self.brokers):
            self.pidfile(n).unlink(missing_ok=True)
        self._procs.clear()
        shutil.rmtree(self.data_root, ignore_errors=True)
        return outcomes

    def _popen(self, n: int, pid: int) -> subprocess.Popen | None:
        proc = self._procs.get(n)
        return proc if proc is not None and proc.pid == pid else None

    def _check_ports(self, numbers) -> None:
        procs.check_ports_free({key: self.ports[key] for n in numbers for key in broker_ports(n)}, port_owners(self.brokers), ClusterError)

    def _write_config(self) -> None:
        shutil.rmtree(self.data_root, ignore_errors=True)
        self.data_root.mkdir(parents=True)
        for n in range(self.brokers):
            self.properties_path(n).write_text(self.properties(n))

    def _format(self) -> None:
        """`kafka-storage format` for every broker with the one cluster id, the three JVMs side by side."""
        running = []
        for n in range(self.brokers):
            argv = [self.java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J2}", "-cp",
                    f"{self.libs}/*", "kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(self.properties_path(n))]
            running.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        failures = []
        for n, proc in enumerate(running):
            out, _ = proc.communicate(timeout=START_TIMEOUT_S)
            if proc.returncode != 0:
                failures.append(f"{part_name(n)} (exit {proc.returncode}): " + "\n".join(out.strip().splitlines()[-8:]))
        if failures:
            raise ClusterError("kafka storage format failed: " + "; ".join(failures))

    def gid(self, n: int) -> int | None:
        """Broker n's own group id as root (isolate_broker tells its packets apart by it); None otherwise."""
        return BROKER_GID_BASE + n if os.geteuid() == 0 else None

    def _launch(self, n: int) -> None:
        self._procs[n] = procs.launch(part_name(n), self.argv(n), self.log_path(n), self.pidfile(n), self.directory,
                                      gid=self.gid(n))

    def _wait_ready(self, numbers, timeout_s: float) -> None:
        """Until each broker answers an ApiVersions request on its own client port. A KRaft broker enables request
        processing only once the controller quorum has registered and unfenced it, so an answer means "registered"."""
        for n in numbers:
            port = self.ports[f"kafka_{n}"]

            def check(n: int = n, port: int = port) -> tuple[bool, str]:
                return api_versions_ok(port), f"broker {n} does not answer Kafka requests on port {port} yet"

            procs.wait_ready(part_name(n), self._procs[n], check, timeout_s, self.log_path(n), ClusterError)

    def _wait_registered(self, timeout_s: float) -> None:
        """Until the cluster's metadata (admin API) lists every broker."""
        admin, want = self._admin(), set(range(self.brokers))
        deadline = time.monotonic() + timeout_s
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                seen = set(admin.list_topics(timeout=ADMIN_TIMEOUT_S).brokers)
            except Exception:  # KafkaException: the metadata request timed out; ask again
                pass
            if want <= seen:
                return
            time.sleep(0.1)
        raise ClusterError(f"Kafka cluster at {self.direct_bootstrap}: brokers {sorted(seen)} registered, not all of {sorted(want)}, within {timeout_s:g} s")

    def _admin(self, bootstrap: str | None = None) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": bootstrap or self.direct_bootstrap, "logger": _QuietLog()})

    # -- topics and leaders ----------------------------------------------------------------------------------
    def create_topics(self, topics: dict[str, dict[str, str]] | None = None, partitions: int = PARTITIONS,
                      timeout_s: float = 30.0) -> None:
        """Create `topics` (default: the cluster's) with every broker as a replica; wait until every partition has a
        leader and a full ISR. A topic that already exists is fine."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        wanted = self.topics if topics is None else topics
        if not wanted:
            return
        admin = self._admin()  # kept until the futures resolve: a collected client fails them
        futures = admin.create_topics([NewTopic(name, partitions, self.brokers, config={**DEFAULT_TOPIC_CONFIG, **config})
                                       for name, config in wanted.items()], request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ClusterError(f"could not create topic {name!r} on {self.bootstrap}: {exc.args[0].str()}") from None
            except TimeoutError:
                raise ClusterError(f"could not create topic {name!r} on {self.bootstrap}: no answer within {timeout_s:g} s "
                                   "(clients reach the brokers at their advertised addresses: is the proxy up?)") from None
        self.wait_in_sync(list(wanted), timeout_s)

    def partition_states(self, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
        """partition -> (leader, replicas, in-sync replicas), as the cluster reports them now."""
        md = self._admin().list_topics(topic, timeout=10.0)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            raise ClusterError(f"topic {topic!r} not found on {self.direct_bootstrap}" + (f": {meta.error}" if meta else ""))
        return {p: (m.leader, list(m.replicas), list(m.isrs)) for p, m in sorted(meta.partitions.items())}

    def leader(self, topic: str, partition: int = 0) -> int:
        """The broker number that leads `partition` of `topic`."""
        leader = self.partition_states(topic)[partition][0]
        if leader < 0:
            raise ClusterError(f"partition {partition} of {topic!r} has no leader right now")
        return leader

    def wait_in_sync(self, topics: list[str], timeout_s: float = 60.0) -> None:
        """Until every broker runs and every partition of `topics` has a leader with all its replicas in sync."""
        deadline = time.monotonic() + timeout_s
        last = "not checked yet"
        while time.monotonic() < deadline:
            try:
                lagging = [f"{t}/{p} leader {leader} isr {isr} of {replicas}" for t in topics
                           for p, (leader, replicas, isr) in self.partition_states(t).items()
                           if leader < 0 or sorted(isr) != sorted(replicas)]
                down = [part_name(n) for n in range(self.brokers) if self.pid(n) is None]
                if not lagging and not down:
                    return
                last = "; ".join(lagging + [f"{part} not running" for part in down])
            except Exception as exc:  # ClusterError, KafkaException: not answering yet
                last = str(exc)
            time.sleep(0.2)
        raise ClusterError(f"Kafka cluster not in sync within {timeout_s:g} s: {last}")

