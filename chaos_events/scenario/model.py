"""The typed scenario: a Plan of targets, probes, faults and SLOs, each carrying its own built parameter model.

Pure: standard library and pydantic. No I/O. Nothing downstream re-parses a value:
`FaultSpec.params` is the fault type's own frozen model, `SloSpec.params` the metric's, `Target.spec` the target
kind's, `ProbeSpec.params` the probe kind's; durations are float seconds, ratios floats in 0..1.

Example:
    plan = load_plan("scenarios/service-broker-pause.yml")
    plan.faults[0].at_s == 20.0 and plan.targets["broker"].kind is TargetKind.PROCESS
    plan.targets["broker"].spec.pidfile == ".run/demo/broker.pid"
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import Field

from chaos_events.scenario.fields import ScenarioModel, Seconds, TextList
from chaos_events.scenario.run_rules import HaltCondition, LedgerConfig, SteadyState
from chaos_events.scenario.probe_kinds import ProbeKind, ProbeSpec  # noqa: F401  (part of the model; defined with the kinds)
from chaos_events.scenario.targets import Target, TargetKind  # noqa: F401  (part of the model; defined with the kinds)


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


def occurrence_id(fault_index: int, number: int) -> str:
    """The id of one occurrence of a fault, everywhere (timeline, journal, record, reports): 'f0#1' is the first
    occurrence of the plan's first fault; repeats count up from 1."""
    return f"f{fault_index}#{number}"


@dataclass(frozen=True)
class Repeat:
    """Inject the same fault `times` times in all, one every `every_s` seconds from `at`."""

    every_s: float
    times: int


@dataclass(frozen=True)
class FaultSpec:
    """One fault on the timeline, before expansion of `repeat`. `params` is the fault type's built Params model.

    Example: FaultSpec(index=0, type="pause", target="broker", at_s=30.0, for_s=20.0, params=PauseParams(), line=9)
    """

    index: int
    type: str
    target: str
    at_s: float
    for_s: float
    params: Any = None
    repeat: Repeat | None = None
    line: int | None = None
    steady_state: bool = False      # check the steady state right before this fault (besides before the first)

    def occurrences(self) -> list[tuple[float, float]]:
        """(start, end) run times of every occurrence, repeat included."""
        count = self.repeat.times if self.repeat else 1
        every = self.repeat.every_s if self.repeat else 0.0
        return [(self.at_s + i * every, self.at_s + i * every + self.for_s) for i in range(count)]

    def occurrence_ids(self) -> list[str]:
        """The id of each occurrence, in the order of `occurrences()`."""
        return [occurrence_id(self.index, n) for n in range(1, len(self.occurrences()) + 1)]


@dataclass(frozen=True)
class SloSpec:
    """One recovery objective. `params` is the metric's own model (chaos_events.verdict.metrics).

    `optional`: a result that cannot be verified is shown and reported as skipped, instead of failing the run.
    Example: SloSpec("recovery", SloMetric.RECOVERY_TIME, RecoveryTimeParams(max_s=30.0), line=14)
    """

    name: str
    metric: SloMetric
    params: Any
    line: int | None = None
    optional: bool = False


class Settings(ScenarioModel):
    """Scenario-wide knobs with safe defaults (the scenario's `settings:`)."""

    recovery_window_s: Seconds = Field(30.0, alias="recovery_window", gt=0,
                                       description="how long after a fault ends counts as its recovery phase")
    sustain_s: Seconds = Field(5.0, alias="sustain", description="recovered means back within the baseline band "
                                                                 "for this long")
    allowed_hosts: TextList = Field(("127.0.0.1", "localhost", "::1"),
                                    description="hosts load and faults may go to besides loopback (names, addresses "
                                                "or networks like 192.0.2.0/24); --chaos-allow adds more")
    catch_up_s: Seconds = Field(30.0, alias="catch_up", description="how long the ledger audit at the end may wait "
                                                                    "for the platform to catch up")


@dataclass(frozen=True)
class Plan:
    """A validated scenario. Invariant: every fault names a declared target of a kind its type accepts.

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
    extra_allowed: tuple[str, ...] = ()   # --chaos-allow: extra hosts and container names for this run
    steady_state: SteadyState | None = None
    halts: tuple[HaltCondition, ...] = ()
    on_halt: str = "stop_load"            # or keep_load: after a halt, the load goes on without faults
    ledger: LedgerConfig = LedgerConfig()

    def fault_windows(self) -> list[tuple[float, float, FaultSpec]]:
        """Every occurrence as (start, end, spec), sorted by start."""
        windows = [(start, end, spec) for spec in self.faults for start, end in spec.occurrences()]
        return sorted(windows, key=lambda w: (w[0], w[2].index))

    def allowed_hosts(self) -> tuple[str, ...]:
        """Every host a run of this plan may send load or faults to: the scenario's list plus --chaos-allow."""
        return tuple(self.settings.allowed_hosts) + tuple(self.extra_allowed)
