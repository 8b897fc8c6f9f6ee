"""What a chaos test reads: ChaosResult, one finished run (exit code, chaos-report.json, output, observations).

Part of the pytest plugin (chaos_events.pytest_plugin). Imports pytest, the standard library and the harness's pure
core (record, verdict.stats, lazily); never locust, gevent, docker or prometheus_client.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest


@dataclass(frozen=True)
class SloView:
    """One SLO result from chaos-report.json: status is "pass", "fail" or "not_verifiable"."""

    name: str
    metric: str
    status: str
    value: float | None
    limit: float | None
    unit: str
    message: str
    details: dict

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class PhaseView:
    """Observed behaviour in one phase; the *_change fields compare with the baseline (None for the baseline)."""

    phase: str
    requests: int
    failures: int
    error_rate: float | None
    rps: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    duration_s: float
    error_rate_change: float | None = None
    p95_ratio: float | None = None
    rps_change: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PhaseView":
        return cls(data["phase"], data["requests"], data["failures"], data["error_rate"], data["rps"], data["p50_ms"],
                   data["p95_ms"], data["p99_ms"], data["duration_s"], data.get("error_rate_change"),
                   data.get("p95_ratio"), data.get("rps_change"))


@dataclass(frozen=True)
class ChaosEvent:
    """A fault event of the run: kind "injected", "reverted", "inject_failed", "revert_failed" (from the report) or
    "inject" (followed live in the run's event stream, for `observe`)."""

    t: float
    kind: str
    fault_id: str
    fault_type: str
    target: str
    detail: str = ""


@dataclass
class Observation:
    """What an `observe` callback returned (or raised) while a fault was active."""

    event: ChaosEvent
    value: Any = None
    error: BaseException | None = None


class ChaosResult:
    """One finished chaos run: exit code, the chaos-report.json content, the console output, and observations.

    Example: result.slo("recovery").passed; result.phase("fault").error_rate; result.assert_slos()
    """

    def __init__(self, exit_code: int, report: dict | None, report_dir: Path, output: str, scenario_path: Path,
                 observations: list[Observation]):
        self.exit_code = exit_code
        self.report = report or {}
        self.report_dir = report_dir
        self.output = output
        self.scenario_path = scenario_path
        self.observations = observations

    # -- verdict
    @property
    def verdict(self) -> list[SloView]:
        return [SloView(r["name"], r["metric"], r["status"], r["value"], r["limit"], r["unit"], r["message"], r["details"])
                for r in self.report.get("verdict", {}).get("results", [])]

    def slo(self, name: str) -> SloView:
        for view in self.verdict:
            if view.name == name:
                return view
        raise KeyError(f"no SLO named {name!r} in {self.report_dir / 'chaos-report.json'}; "
                       f"SLOs: {', '.join(v.name for v in self.verdict) or '(none)'}")

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def verdict_table(self) -> str:
        rows = [("SLO", "METRIC", "VALUE", "LIMIT", "RESULT", "MESSAGE")]
        for v in self.verdict:
            rows.append((v.name, v.metric, _fmt(v.value, v.unit), _fmt(v.limit, v.unit), v.status.upper(), v.message))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"chaos verdict: {self.report.get('result', 'NO REPORT')} (exit code {self.exit_code}); "
                     f"reports in {self.report_dir}")
        return "\n".join(lines)

    def assert_slos(self, *names: str, allow_not_verifiable: bool = True) -> None:
        """Fail with the verdict table unless every SLO (or the named ones) held and every fault was reverted."""
        if not self.report:
            pytest.fail(f"no chaos-report.json in {self.report_dir} (exit code {self.exit_code})\n{tail(self.output)}",
                        pytrace=False)
        chosen = [self.slo(n) for n in names] if names else self.verdict
        ok = {"pass", "not_verifiable"} if allow_not_verifiable else {"pass"}
        broken = [v for v in chosen if v.status not in ok]
        if broken or self.exit_code == 4 or (not names and self.exit_code not in (0, 3)):
            what = ", ".join(v.name for v in broken) or f"exit code {self.exit_code}"
            pytest.fail(f"chaos SLOs not met ({what}):\n{self.verdict_table()}\n{unexpected(self.report)}", pytrace=False)

    # -- phases and events
    @property
    def phases(self) -> dict[str, PhaseView]:
        return {name: PhaseView.from_dict(data) for name, data in self.report.get("phase_stats", {}).items()}

    def phase(self, name: str, endpoints: str | Iterable[str] | None = None) -> PhaseView:
        """Per-phase stats over all endpoints, or only `endpoints` ("POST /api/events" or a list of such)."""
        if endpoints is None:
            phases = self.phases
            if name not in phases:
                pytest.fail(f"the run has no {name!r} phase; phases: {', '.join(phases) or '(none)'}\n{tail(self.output)}")
            return phases[name]
        return self._phase_for(name, endpoints)

    def _phase_for(self, name: str, endpoints: str | Iterable[str]) -> PhaseView:
        from chaos_events.scenario.model import Phase
        from chaos_events.record import Record
        from chaos_events.verdict import stats
        from chaos_events.verdict.figures import phase_figures
        from chaos_events.verdict.phases import PhaseSpan

        record = Record.from_dict(self.report["record"])
        spans = [PhaseSpan(Phase(s["phase"]), s["start_t"], s["end_t"], s["occurrence_id"]) for s in self.report["phases"]]
        flt = stats.EndpointFilter.parse(endpoints if isinstance(endpoints, str) else list(endpoints))
        phase = Phase(name)
        figures = phase_figures(record, spans, flt, wanted=(phase,), min_duration_s=0.0)[phase.value]
        return PhaseView.from_dict(figures.to_dict())

    def between(self, start_t: float, end_t: float, endpoints: str | Iterable[str] | None = None) -> PhaseView:
        """Stats over the whole seconds of run time that lie entirely in [start_t, end_t), e.g. a baseline without the
        second in which the first fault began (request windows are whole wall-clock seconds)."""
        from chaos_events.record import Record
        from chaos_events.verdict import stats

        record = Record.from_dict(self.report["record"])
        flt = stats.EndpointFilter.parse(None if endpoints is None else endpoints if isinstance(endpoints, str) else list(endpoints))
        agg = stats.Agg()
        per_second = stats.per_second(record, flt)
        seconds = [s for s in per_second if record.t_of(s) >= start_t and record.t_of(s) + 1 <= end_t]
        for second in seconds:
            agg.add(per_second[second])
        span = float(len(seconds))
        return PhaseView(f"{start_t:g}s-{end_t:g}s", agg.count, agg.failures, agg.error_rate,
                         agg.count / span if span else None, agg.percentile_ms(0.50), agg.percentile_ms(0.95),
                         agg.percentile_ms(0.99), span)

    @property
    def events(self) -> list[ChaosEvent]:
        return [ChaosEvent(e["t"], e["kind"], e["fault_id"], e["fault_type"], e["target"], e.get("detail", ""))
                for e in self.report.get("timeline", [])]

    def injected(self, fault_type: str | None = None) -> list[ChaosEvent]:
        return [e for e in self.events if e.kind == "injected" and fault_type in (None, e.fault_type)]

    def reverted(self, fault_type: str | None = None) -> list[ChaosEvent]:
        return [e for e in self.events if e.kind == "reverted" and fault_type in (None, e.fault_type)]

    def assert_reverted(self) -> None:
        """Every injected fault has a successful revert event."""
        injected = {e.fault_id for e in self.injected()}
        reverted = {e.fault_id for e in self.reverted()}
        if not injected:
            pytest.fail(f"no fault was injected\n{tail(self.output)}", pytrace=False)
        if injected - reverted:
            pytest.fail(f"faults not reverted: {sorted(injected - reverted)}\n{unexpected(self.report)}", pytrace=False)

    def probe_samples(self, probe: str) -> list[dict]:
        """Raw probe samples from the record: dicts with t, healthy, value, detail."""
        return [s for s in self.report.get("record", {}).get("probes", []) if s["probe"] == probe]

    def endpoint_totals(self, prefix: str = "") -> dict[str, dict[str, int]]:
        """Total count and failures per "METHOD name" (optionally only names starting with `prefix`)."""
        out: dict[str, dict[str, int]] = {}
        for w in self.report.get("record", {}).get("windows", []):
            if not w["name"].startswith(prefix):
                continue
            row = out.setdefault(f"{w['method']} {w['name']}", {"count": 0, "failures": 0})
            row["count"] += w["count"]
            row["failures"] += w["failures"]
        return out

    def ledger(self, check: str) -> dict | None:
        """The ledger audit result of a check ("kafka" or "pipeline"), when the scenario asked for it."""
        for row in self.report.get("record", {}).get("ledger", []):
            if row["check"] == check:
                return row
        return None

    def observed(self, fault: str) -> Any:
        """The value an `observe` callback returned for the first occurrence of a fault type (or fault id)."""
        for obs in self.observations:
            if fault in (obs.event.fault_type, obs.event.fault_id):
                return obs.value
        raise KeyError(f"nothing observed for {fault!r}; observed: {[o.event.fault_id for o in self.observations]}")

    def __repr__(self) -> str:
        return f"<ChaosResult exit_code={self.exit_code} result={self.report.get('result')} dir={self.report_dir}>"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "s":
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"
    return f"{value:g} {unit}".strip()


def tail(text: str, lines: int = 40) -> str:
    """The last lines of the Locust output, for a failure message."""
    return "--- last lines of the Locust output ---\n" + "\n".join(text.splitlines()[-lines:])


def unexpected(report: dict) -> str:
    """The report's unexpected events as one line, or nothing."""
    items = report.get("unexpected") or []
    return ("unexpected: " + "; ".join(items)) if items else ""

