"""What a report says: the one dict (`build_report`) that the JSON, JUnit XML, Markdown and HTML reports all render,
its JSON form, and the value formatting they share with the console and the web UI.

Pure module: standard library only (no gevent, locust, docker, prometheus_client, no I/O, no Jinja2).
Schema `chaos-events.report/1`: the keys of `build_report`'s dict are read by other tools and by the pytest plugin,
so a key is never renamed or dropped; new keys may be added.

Example:
    report = build_report(evaluate(plan, record), plan, record)
    report["phase_stats"]["fault"]["error_rate_change"]   # 0.143
"""
from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from chaos_events.record import FaultEventKind, Record
from chaos_events.scenario.model import Plan, SloMetric
from chaos_events.verdict import stats
from chaos_events.verdict.figures import phase_figures
from chaos_events.verdict.phases import derive_phases, fault_occurrences, run_end
from chaos_events.verdict.results import SloStatus, Verdict
from chaos_events.verdict.stats import EndpointFilter, pct, secs

REPORT_SCHEMA = "chaos-events.report/1"

# What to do about a broken SLO, by metric. The failure message is appended, so the item stands on its own.
_ACTIONS = {
    SloMetric.ERROR_RATE: "Reduce client-visible errors under this fault (retries with backoff, circuit breaking, "
                          "buffering writes while the dependency is down)",
    SloMetric.LATENCY: "Bound latency under this fault (client and server timeouts, shed load instead of queueing)",
    SloMetric.THROUGHPUT_DROP: "Keep serving under this fault (more headroom, degrade gracefully instead of stalling)",
    SloMetric.DETECTION_TIME: "Detect this fault sooner: add or tighten the alert / health check that should see it",
    SloMetric.RECOVERY_TIME: "Speed up recovery after the fault ends (reconnect with backoff, bounded retry queues, "
                             "check that clients re-resolve and re-open connections)",
    SloMetric.LOST_WRITES: "Stop losing acknowledged writes: acknowledge only after a durable write (acks=all, "
                           "replication, idempotent producer), and persist before replying 2xx",
    SloMetric.DUPLICATES: "Make processing idempotent (dedupe by event id in the consumer / store)",
    SloMetric.ALERTS_FIRED: "Add or fix alert rules so this failure pages someone",
    SloMetric.HEALTH_TRUTHFUL: "Make /health report its dependencies truthfully (check them, do not just return 200)",
    SloMetric.BLAST_RADIUS: "Isolate independent paths from this fault (bulkheads: separate pools, timeouts, queues)",
    SloMetric.DATA_REJECTED: "Validate payloads at the edge (4xx) and dead-letter poison messages",
}


def format_value(value: float | None, unit: str) -> str:
    """A measured value or limit in its unit: "14.3%", "5.0s", "1.50x", "1532 writes"; "—" when there is none."""
    if value is None:
        return "—"
    if unit == "ratio":
        return pct(value)
    if unit == "s":
        return secs(value)
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g}" + (f" {unit}" if unit else "")


def result_word(verdict: Verdict) -> str:
    """The overall result: "PASS", "FAIL" or "REVERT FAILED" (a fault left injected outranks a broken SLO)."""
    return "REVERT FAILED" if verdict.revert_failed else ("PASS" if verdict.ok else "FAIL")


def _iso(wall: float) -> str:
    return _dt.datetime.fromtimestamp(wall, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def series(record: Record, flt: EndpointFilter | None = None) -> list[dict[str, Any]]:
    """Per-second throughput, error rate and p95 from the first to the last second with traffic (gaps as zero)."""
    flt = flt or EndpointFilter()
    per = stats.per_second(record, flt)
    if not per:
        return []
    out = []
    for second in range(min(per), max(per) + 1):
        agg = per.get(second, stats.Agg())
        out.append({"t": round(record.t_of(second), 3), "rps": agg.count, "failures": agg.failures,
                    "error_rate": agg.error_rate, "p95_ms": agg.percentile_ms(0.95)})
    return out


def _timeline(record: Record) -> list[dict[str, Any]]:
    return [{"t": e.t, "kind": e.kind.value, "fault_id": e.fault_id, "fault_type": e.fault_type, "target": e.target,
             "detail": e.detail, "data": dict(e.data), "notes": _notes(e.data)}
            for e in sorted(record.events, key=lambda e: e.t)]


def _notes(data: dict[str, Any]) -> str:
    """A fault's observations in words, for the timeline tables: 'broker 2 (leader of events/0); leader before: 2'."""
    words = []
    if "broker_id" in data:
        words.append(f"broker {data['broker_id']}" + (f" ({data['role']})" if data.get("role") else ""))
    watched = [f"{role}_{when}" for role in ("leader", "controller") for when in ("before", "after")]
    for key in watched:
        if key in data:
            words.append(f"{key.replace('_', ' ')}: {'none' if data[key] is None or data[key] < 0 else data[key]}")
    words += [f"{k}: {v}" for k, v in data.items() if k not in ("broker_id", "role", *watched)]
    return "; ".join(words)


def _alerts(verdict: Verdict) -> list[dict[str, Any]]:
    return [{"slo": r.name, "status": r.status.value, "expected": r.details.get("expected", []),
             "fired": r.details.get("fired", []), "alerts": r.details.get("alerts", []), "message": r.message}
            for r in verdict.results if r.metric is SloMetric.ALERTS_FIRED]


def _times(verdict: Verdict) -> list[dict[str, Any]]:
    return [{"slo": r.name, "metric": r.metric.value, **occ}
            for r in verdict.results if r.metric in (SloMetric.DETECTION_TIME, SloMetric.RECOVERY_TIME)
            for occ in r.details.get("occurrences", [])]


def _unexpected(verdict: Verdict, record: Record) -> list[str]:
    items = []
    for e in sorted(record.events, key=lambda e: e.t):
        if e.kind is FaultEventKind.REVERT_FAILED:
            items.append(f"Revert failed for {e.fault_id} ({e.fault_type} {e.target}) at t={e.t:.1f}s: "
                         f"{e.detail or 'no detail'}. The system was left degraded (exit code 4).")
        elif e.kind is FaultEventKind.INJECT_FAILED:
            items.append(f"Injection failed for {e.fault_id} ({e.fault_type} {e.target}) at t={e.t:.1f}s: "
                         f"{e.detail or 'no detail'}.")
        elif e.kind is FaultEventKind.ABORTED:
            items.append(f"Timeline aborted at t={e.t:.1f}s: {e.detail or 'no detail'}.")
    for r in verdict.results:
        if r.status is SloStatus.FAIL and r.metric in (SloMetric.HEALTH_TRUTHFUL, SloMetric.BLAST_RADIUS):
            items.append(f"{r.name}: {r.message}")
        if r.status is SloStatus.FAIL and r.metric is SloMetric.ALERTS_FIRED and "silent failure" in r.message:
            items.append(f"{r.name}: {r.message}")
    return items


def _action_items(verdict: Verdict, record: Record) -> list[str]:
    items = []
    for e in record.events:
        if e.kind is FaultEventKind.REVERT_FAILED:
            items.append(f"Restore {e.target} by hand now ({e.fault_type} could not be reverted: {e.detail or 'no detail'}); "
                         "`chaos-events revert` replays the revert journal.")
    for r in verdict.results:
        if r.status is SloStatus.FAIL:
            items.append(f"{_ACTIONS.get(r.metric, 'Investigate')}. [{r.name}] {r.headline}")
    return items


def build_report(verdict: Verdict, plan: Plan, record: Record) -> dict[str, Any]:
    """The one dict every report format renders."""
    with stats.memo():
        return _build_report(verdict, plan, record)


def _build_report(verdict: Verdict, plan: Plan, record: Record) -> dict[str, Any]:
    phases = derive_phases(record, plan)
    return {
        "schema": REPORT_SCHEMA,
        "scenario": plan.name,
        "description": plan.description,
        "source": plan.source,
        "run_id": record.run_id,
        "date": _iso(record.start_wall),
        "duration_s": run_end(record),
        "result": result_word(verdict),
        "verdict": verdict.to_dict(),
        "phases": [s.to_dict() for s in phases],
        "phase_stats": {name: f.to_dict() for name, f in phase_figures(record, phases).items()},
        "faults": [o.to_dict() for o in fault_occurrences(record, plan)],
        "timeline": _timeline(record),
        "alerts": _alerts(verdict),
        "detection_recovery": _times(verdict),
        "unexpected": _unexpected(verdict, record),
        "action_items": _action_items(verdict, record),
        "series": series(record),
        "record": record.to_dict(),
    }


_COMPACT_KEYS = frozenset({"record", "series"})  # large: indenting them would triple the file and the time to write it


def render_json(report: dict[str, Any]) -> str:
    """The report as JSON: small keys indented for people, the record and the series on one line each."""
    items = [f"  {json.dumps(key)}: " + json.dumps(value, default=str, indent=None if key in _COMPACT_KEYS else 2)
             for key, value in report.items()]
    return "{\n" + ",\n".join(items) + "\n}\n"
