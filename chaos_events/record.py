"""The record of one run: request windows, fault events, probe samples, ledger results.

It is the single source that the exporter, the web UI, the verdict and the reports read; nothing computes the same
number twice. Pure module: standard library only, no clock of its own (callers pass times in).

Times: `wall` is epoch seconds; `t` is run time, seconds since `start_wall` (the master's test start).
Request windows are keyed by whole wall-clock second so that workers, which do not know the master's run clock,
can send them; `t_of(second)` converts.

Example:
    rec = Record(run_id="r1", scenario="gameday", start_wall=1000.0)
    rec.add_request(1003, "POST", "/api/events", 12.0, failed=False)
    rec.windows[1003][("POST", "/api/events")].count == 1
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable


def bucket_ms(ms: float) -> int:
    """Locust's rounding of a response time, so our histograms agree with Locust's own percentiles."""
    if ms < 100:
        return int(round(ms))
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10000:
        return int(round(ms, -2))
    return int(round(ms, -3))


@dataclass
class EndpointWindow:
    """Counts for one endpoint in one second. `latency_ms` maps a bucket (ms, see bucket_ms) to a count."""

    count: int = 0
    failures: int = 0
    latency_ms: dict[int, int] = field(default_factory=dict)

    def add(self, response_time_ms: float, failed: bool) -> None:
        self.count += 1
        self.failures += 1 if failed else 0
        bucket = bucket_ms(response_time_ms)
        self.latency_ms[bucket] = self.latency_ms.get(bucket, 0) + 1

    def merge(self, other: "EndpointWindow") -> None:
        self.count += other.count
        self.failures += other.failures
        for bucket, n in other.latency_ms.items():
            self.latency_ms[bucket] = self.latency_ms.get(bucket, 0) + n


class FaultEventKind(enum.Enum):
    INJECTED = "injected"
    REVERTED = "reverted"
    INJECT_FAILED = "inject_failed"
    REVERT_FAILED = "revert_failed"
    PLANNED = "planned"      # dry run: would have been injected
    ABORTED = "aborted"      # the rest of the timeline was cancelled


# The detail of a REVERTED event at the fault's planned end; any other detail means it was reverted early.
TIME_UP = "time up"


@dataclass(frozen=True)
class FaultEvent:
    """One step of a fault's life. `fault_id` is unique per occurrence, e.g. 'f0#1'."""

    t: float
    wall: float
    kind: FaultEventKind
    fault_id: str
    fault_type: str
    target: str
    detail: str = ""
    data: dict = field(default_factory=dict)   # the fault's observations (Fault.observations), e.g. broker_id


@dataclass(frozen=True)
class ProbeSample:
    """One probe reading. `healthy` is None when the probe could not tell (e.g. no Prometheus configured).

    `value` is the probe's number (lag in messages, HTTP status); `detail` carries per-dependency state or the
    names of firing alerts (`{"firing": ["HighErrorRate"]}`).
    """

    t: float
    wall: float
    probe: str
    healthy: bool | None
    value: float | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class LedgerResult:
    """Outcome of reconciling acknowledged writes with what was stored, per check ('kafka', 'pipeline')."""

    check: str
    acknowledged: int = 0
    checked: int = 0
    found: int = 0
    lost: int = 0
    duplicates: int = 0
    verifiable: bool = True
    detail: str = ""


WindowKey = tuple[str, str]  # (method, name)


@dataclass
class Record:
    """Everything observed in one run. See the module docstring for an example."""

    run_id: str
    scenario: str
    start_wall: float
    windows: dict[int, dict[WindowKey, EndpointWindow]] = field(default_factory=dict)
    events: list[FaultEvent] = field(default_factory=list)
    probes: list[ProbeSample] = field(default_factory=list)
    ledger: list[LedgerResult] = field(default_factory=list)
    end_t: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # -- requests --------------------------------------------------------------------------------
    def add_request(self, second: int, method: str, name: str, response_time_ms: float, failed: bool) -> None:
        per_second = self.windows.setdefault(second, {})
        window = per_second.get((method, name))
        if window is None:
            window = per_second[(method, name)] = EndpointWindow()
        window.add(response_time_ms, failed)

    def merge_windows(self, delta: dict[int, dict[WindowKey, EndpointWindow]]) -> None:
        for second, per_second in delta.items():
            mine = self.windows.setdefault(second, {})
            for key, window in per_second.items():
                if key in mine:
                    mine[key].merge(window)
                else:
                    mine[key] = EndpointWindow(window.count, window.failures, dict(window.latency_ms))

    def t_of(self, second: int) -> float:
        return second - self.start_wall

    def endpoints(self) -> list[WindowKey]:
        return sorted({key for per_second in self.windows.values() for key in per_second})

    def totals(self) -> dict[WindowKey, EndpointWindow]:
        out: dict[WindowKey, EndpointWindow] = {}
        for per_second in self.windows.values():
            for key, window in per_second.items():
                out.setdefault(key, EndpointWindow()).merge(window)
        return out

    # -- events and probes -----------------------------------------------------------------------
    def add_event(self, event: FaultEvent) -> None:
        self.events.append(event)

    def add_probe(self, sample: ProbeSample) -> None:
        self.probes.append(sample)

    def probe_samples(self, probe: str) -> list[ProbeSample]:
        return [s for s in self.probes if s.probe == probe]

    # -- serialisation (reports, and the record's own JSON round trip) ----------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "start_wall": self.start_wall,
            "end_t": self.end_t,
            "meta": self.meta,
            "windows": [
                {"second": second, "method": m, "name": n, **asdict(w)}
                for second, per_second in sorted(self.windows.items())
                for (m, n), w in sorted(per_second.items())
            ],
            "events": [{**asdict(e), "kind": e.kind.value} for e in self.events],
            "probes": [asdict(s) for s in self.probes],
            "ledger": [asdict(r) for r in self.ledger],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        rec = cls(data["run_id"], data["scenario"], data["start_wall"], end_t=data.get("end_t"), meta=data.get("meta", {}))
        for w in data.get("windows", []):
            window = EndpointWindow(w["count"], w["failures"], {int(k): v for k, v in w["latency_ms"].items()})
            rec.windows.setdefault(int(w["second"]), {})[(w["method"], w["name"])] = window
        rec.events = [FaultEvent(**{**e, "kind": FaultEventKind(e["kind"])}) for e in data.get("events", [])]
        rec.probes = [ProbeSample(**s) for s in data.get("probes", [])]
        rec.ledger = [LedgerResult(**r) for r in data.get("ledger", [])]
        return rec


def windows_to_wire(windows: dict[int, dict[WindowKey, EndpointWindow]]) -> list[list[Any]]:
    """Compact form for report_to_master: [[second, method, name, count, failures, {bucket: n}], ...]."""
    return [
        [second, m, n, w.count, w.failures, {str(b): c for b, c in w.latency_ms.items()}]
        for second, per_second in windows.items()
        for (m, n), w in per_second.items()
    ]


def windows_from_wire(rows: Iterable[list[Any]]) -> dict[int, dict[WindowKey, EndpointWindow]]:
    out: dict[int, dict[WindowKey, EndpointWindow]] = {}
    for second, m, n, count, failures, hist in rows:
        out.setdefault(int(second), {})[(m, n)] = EndpointWindow(count, failures, {int(b): c for b, c in hist.items()})
    return out
