"""A scenario file becomes a typed, validated Plan; every problem names file, line and field.

Pure module: standard library and PyYAML only. No gevent, locust, docker or prometheus_client.
The loader (`load_plan`, `parse_plan`) collects every problem before raising one PlanError.

Example:
    plan = load_plan("scenarios/broker-pause.yml")
    plan.faults[0].at_s == 30.0 and plan.targets["broker"].kind is TargetKind.PROCESS
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


class TargetKind(enum.Enum):
    PROCESS = "process"        # a local process: pidfile, pid, or a command the harness starts
    CONTAINER = "container"    # a Docker container: by name or label
    PROXY = "proxy"            # a named route in the harness's TCP fault proxy
    DIRECTORY = "directory"    # a directory to fill (disk faults)
    ENDPOINT = "endpoint"      # a TCP address or HTTP URL (pool exhaustion, bad payloads to the API)
    HOST = "host"              # this machine (CPU burn, memory pressure)
    KAFKA = "kafka"            # a Kafka topic (poison messages)


@dataclass(frozen=True)
class Target:
    """One allow-listed thing a fault may touch. `spec` holds the kind's own keys, already validated.

    Invariant: a fault only ever receives a Target that the scenario named.
    Example: Target("broker", TargetKind.PROCESS, {"pidfile": ".run/kafka.pid", "restart": None}, line=3)
    Spec keys per kind:
      process:   pidfile | pid | command (list), optional restart (list), cwd
      container: name | label
      proxy:     proxy (route name), control (URL of the proxy's control API, optional)
      directory: path
      endpoint:  host, port, url (url may be None for a bare address)
      host:      (none)
      kafka:     bootstrap, topic
    """

    name: str
    kind: TargetKind
    spec: Mapping[str, Any]
    line: int | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.kind.value})"


@dataclass(frozen=True)
class Repeat:
    """Inject the same fault `times` times in all, one every `every_s` seconds from `at`."""

    every_s: float
    times: int


@dataclass(frozen=True)
class FaultSpec:
    """One fault on the timeline, before expansion of `repeat`.

    Example: FaultSpec(index=0, type="pause", target="broker", at_s=30.0, for_s=20.0, params={}, line=9)
    `params` holds the fault type's raw parameters; the fault registry turns them into its frozen dataclass.
    """

    index: int
    type: str
    target: str
    at_s: float
    for_s: float
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    repeat: Repeat | None = None
    line: int | None = None

    def occurrences(self) -> list[tuple[float, float]]:
        """(start, end) run times of every occurrence, repeat included."""
        count = self.repeat.times if self.repeat else 1
        every = self.repeat.every_s if self.repeat else 0.0
        return [(self.at_s + i * every, self.at_s + i * every + self.for_s) for i in range(count)]


class ProbeKind(enum.Enum):
    HTTP = "http"                            # health endpoint: status plus per-dependency state in the body
    KAFKA_LAG = "kafka_lag"                  # consumer-group lag through the admin API
    PROMETHEUS_ALERTS = "prometheus_alerts"  # /api/v1/alerts of a user-configured Prometheus


@dataclass(frozen=True)
class ProbeSpec:
    """Something sampled on a period during the whole run. Example: ProbeSpec("health", ProbeKind.HTTP, 1.0, {"url": ...})."""

    name: str
    kind: ProbeKind
    every_s: float
    params: Mapping[str, Any]
    line: int | None = None


class SloMetric(enum.Enum):
    ERROR_RATE = "error_rate"
    LATENCY = "latency"                  # a percentile, absolute (max) or as ratio to baseline (max_ratio)
    THROUGHPUT_DROP = "throughput_drop"  # 1 - rps(phase)/rps(baseline)
    DETECTION_TIME = "detection_time"
    RECOVERY_TIME = "recovery_time"
    LOST_WRITES = "lost_writes"
    DUPLICATES = "duplicates"
    ALERTS_FIRED = "alerts_fired"
    HEALTH_TRUTHFUL = "health_truthful"
    BLAST_RADIUS = "blast_radius"
    DATA_REJECTED = "data_rejected"      # bad payloads were refused with 4xx and dead-lettered


class Phase(enum.Enum):
    BASELINE = "baseline"
    FAULT = "fault"
    RECOVERY = "recovery"
    TAIL = "tail"          # steady state after the last recovery window
    ALL = "all"


@dataclass(frozen=True)
class SloSpec:
    """One recovery objective. `params` holds the metric's own keys (max, min, during, endpoints, via, ...), validated.

    Example: SloSpec("recovery", SloMetric.RECOVERY_TIME, {"max": 30.0}, line=14)
    """

    name: str
    metric: SloMetric
    params: Mapping[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class Settings:
    """Scenario-wide knobs with safe defaults."""

    recovery_window_s: float = 30.0     # how long after a fault ends counts as its recovery phase
    sustain_s: float = 5.0              # recovered means within the baseline band for this long
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    catch_up_s: float = 30.0            # ledger verification deadline at the end


@dataclass(frozen=True)
class Plan:
    """A validated scenario. Invariant: every fault names a declared target and a registered fault type.

    Example: load_plan("scenarios/gameday.yml").name == "gameday"
    """

    name: str
    source: str
    targets: Mapping[str, Target]
    probes: Mapping[str, ProbeSpec]
    faults: tuple[FaultSpec, ...]
    slos: tuple[SloSpec, ...]
    settings: Settings = Settings()
    description: str = ""

    def fault_windows(self) -> list[tuple[float, float, FaultSpec]]:
        """Every occurrence as (start, end, spec), sorted by start."""
        windows = [(start, end, spec) for spec in self.faults for start, end in spec.occurrences()]
        return sorted(windows, key=lambda w: (w[0], w[2].index))


def load_plan(path: str, extra_allowed: tuple[str, ...] = ()) -> Plan:
    """Read and validate a scenario file. Raises PlanError listing every problem."""
    raise NotImplementedError("filled in by the plan loader work")


def parse_plan(text: str, source: str, extra_allowed: tuple[str, ...] = ()) -> Plan:
    """Validate scenario text; `source` names it in messages."""
    raise NotImplementedError("filled in by the plan loader work")
