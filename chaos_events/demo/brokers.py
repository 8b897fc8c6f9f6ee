"""The demo platform's Kafka, behind one interface with two implementations: Tansu (one in-memory process, the
default) and Apache Kafka (three replicated KRaft brokers, `--kafka apache`).

Standard library only at import (kafka_cluster imports confluent_kafka lazily); never locust or gevent.

The supervisor knows its brokers only through these members:
    kind, parts                 "tansu" with ("broker",); "apache" with ("kafka-0", "kafka-1", "kafka-2")
    port_owners, default_ports  port key -> (part, what it is for), and the defaults (None: a free port)
    routes                      (proxy route name, listen key, upstream key) per broker: each broker advertises its
                                route, so every client connection passes through the TCP fault proxy
    bootstrap, direct           client bootstrap through the proxy, and around it
    argv(part), pidfile(part), pid(part), log_path(part)
    start_all(), start_part(part), stop_part(part), stop_all()
    env()                       what scenarios may interpolate beyond the platform's own DEMO_* keys
    to_json()                   facts kept in platform.json and handed back to `load_brokers`
"""
from __future__ import annotations

from pathlib import Path

from chaos_events.demo import broker as tansu
from chaos_events.demo import procs
from chaos_events.demo.kafka_cluster import BROKERS, KafkaCluster, part_name
from chaos_events.demo.kafka_cluster import port_owners as cluster_port_owners

TANSU_READY_TIMEOUT_S = 20.0


class TansuBroker:
    """One Tansu process (memory storage) listening on `kafka` and advertising the proxy route `kafka_route`.

    Invariant: topics are (re)created after every start, since a restart loses them. Example:
        TansuBroker(run_dir, ports, ["events"], cwd, env).start_all()
    """

    kind = "tansu"
    parts: tuple[str, ...] = ("broker",)
    port_owners = {"kafka_route": ("proxy", "Kafka route"), "kafka": ("broker", "Kafka listener")}
    default_ports = {"kafka_route": 19092, "kafka": 9092}
    routes = (("kafka", "kafka_route", "kafka"),)

    def __init__(self, run_dir: Path, ports: dict[str, int], topics: list[str], cwd: Path, env: dict[str, str],
                 recorded_argv: list[str] | None = None):
        self.run_dir, self.ports, self.topics, self.cwd, self.env_for_start = run_dir, ports, topics, cwd, env
        self._argv = recorded_argv
        self._proc = None

    @classmethod
    def create(cls, run_dir: Path, ports: dict[str, int], topics: list[str], cwd: Path, env: dict[str, str]) -> "TansuBroker":
        tansu.tansu_binary()  # BrokerError, saying what to do, before anything starts
        return cls(run_dir, ports, topics, cwd, env)

    @classmethod
    def load(cls, run_dir: Path, ports: dict[str, int], topics: list[str], cwd: Path, env: dict[str, str], facts: dict,
             recorded_argv: dict[str, list[str]]) -> "TansuBroker":
        return cls(run_dir, ports, topics, cwd, env, recorded_argv.get("broker"))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka_route']}"

    @property
    def direct(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def argv(self, part: str) -> list[str]:
        return list(self._argv) if self._argv else tansu.broker_argv(self.ports["kafka"], self.ports["kafka_route"])

    def pidfile(self, part: str) -> Path:
        return self.run_dir / "broker.pid"

    def log_path(self, part: str) -> Path:
        return self.run_dir / "logs" / "broker.log"

    def pid(self, part: str) -> int | None:
        return procs.running_pid(self.pidfile(part), self.argv(part))

    def start_all(self) -> None:
        self.start_part("broker")

    def start_part(self, part: str) -> int:
        self.stop_part(part)
        procs.check_ports_free({"kafka": self.ports["kafka"]}, self.port_owners, tansu.BrokerError)
        self._proc = procs.launch(part, self.argv(part), self.log_path(part), self.pidfile(part), self.cwd, self.env_for_start)

        def ready() -> tuple[bool, str]:
            if not procs.tcp_open(self.ports["kafka"]):
                return False, f"port {self.ports['kafka']} not accepting connections"
            tansu.ensure_topics(self.ports["kafka"], self.topics)  # memory storage: every (re)start needs them again
            return True, "ok"

        try:
            procs.wait_ready(part, self._proc, ready, TANSU_READY_TIMEOUT_S, self.log_path(part), tansu.BrokerError)
        except BaseException:
            self.stop_part(part)
            raise
        return self._proc.pid

    def stop_part(self, part: str) -> str:
        proc, self._proc = self._proc, None
        return procs.stop_recorded(part, self.pidfile(part), self.argv(part), proc)

    def stop_all(self) -> dict[str, str]:
        return {"broker": self.stop_part("broker")}

    def env(self) -> dict[str, str]:
        return {}

    def to_json(self) -> dict:
        return {}


class ApacheBrokers:
    """Three Apache Kafka brokers (kafka_cluster.KafkaCluster), each behind its own proxy route kafka-N.

    Invariant: broker N advertises 127.0.0.1:ports["kafka_N_route"], the proxy's route to its client listener.
    Example: ApacheBrokers.create(run_dir, ports, ["events", "events.dlq"]).start_all()
    """

    kind = "apache"
    parts = tuple(part_name(n) for n in range(BROKERS))
    port_owners = {**cluster_port_owners(BROKERS), **{f"kafka_{n}_route": ("proxy", f"Kafka route to {part_name(n)}") for n in range(BROKERS)}}
    default_ports = {key: (19092 + int(key.split("_")[1]) if key.endswith("_route") else None) for key in port_owners}
    routes = tuple((part_name(n), f"kafka_{n}_route", f"kafka_{n}") for n in range(BROKERS))

    def __init__(self, cluster: KafkaCluster):
        self.cluster = cluster

    @classmethod
    def create(cls, run_dir: Path, ports: dict[str, int], topics: list[str], cwd: Path, env: dict[str, str]) -> "ApacheBrokers":
        """Checks Java and the jars first (KafkaSetupError says to run fetch-kafka)."""
        return cls(KafkaCluster.create(run_dir, ports, {t: {} for t in topics}))

    @classmethod
    def load(cls, run_dir: Path, ports: dict[str, int], topics: list[str], cwd: Path, env: dict[str, str], facts: dict,
             recorded_argv: dict[str, list[str]]) -> "ApacheBrokers":
        return cls(KafkaCluster.from_json(run_dir, ports, facts))

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def direct(self) -> str:
        return self.cluster.direct_bootstrap

    def argv(self, part: str) -> list[str]:
        return self.cluster.argv(self.cluster.number(part))

    def pidfile(self, part: str) -> Path:
        return self.cluster.pidfile(self.cluster.number(part))

    def log_path(self, part: str) -> Path:
        return self.cluster.log_path(self.cluster.number(part))

    def pid(self, part: str) -> int | None:
        return self.cluster.pid(self.cluster.number(part))

    def start_all(self) -> None:
        self.cluster.start()

    def start_part(self, part: str) -> int:
        return self.cluster.start_broker(self.cluster.number(part))

    def stop_part(self, part: str) -> str:
        return self.cluster.stop_broker(self.cluster.number(part))

    def stop_all(self) -> dict[str, str]:
        return self.cluster.stop()

    def env(self) -> dict[str, str]:
        out = {"DEMO_KAFKA_KIND": self.kind, "DEMO_KAFKA_BROKERS": str(self.cluster.brokers)}
        for n in range(self.cluster.brokers):
            prefix = f"DEMO_KAFKA_BROKER_{n}_"
            out.update({prefix + "PART": part_name(n), prefix + "PIDFILE": str(self.cluster.pidfile(n)),
                        prefix + "ROUTE": part_name(n), prefix + "BOOTSTRAP": f"127.0.0.1:{self.cluster.advertised_port(n)}",
                        prefix + "DIRECT": f"127.0.0.1:{self.cluster.ports[f'kafka_{n}']}",
                        prefix + "REPL_PORT": str(self.cluster.ports[f"kafka_{n}_repl"]),
                        prefix + "CONTROLLER_PORT": str(self.cluster.ports[f"kafka_{n}_controller"])})
            if self.cluster.gid(n) is not None:     # only as root; isolate_broker is refused at preflight otherwise
                out[prefix + "GID"] = str(self.cluster.gid(n))
        return out

    def to_json(self) -> dict:
        return self.cluster.to_json()



IMPLEMENTATIONS: dict[str, type] = {"tansu": TansuBroker, "apache": ApacheBrokers}
KINDS = tuple(IMPLEMENTATIONS)
