"""The console lines of a run: the verdict table printed at the end, and the headless progress line.

Pure module: standard library only (no gevent, locust, docker, prometheus_client, no I/O: callers print).

Example:
    print(format_verdict_table(evaluate(plan, record)))
    progress_line(record, plan, 42.0, ["pause broker"])
    -> "[chaos] t=42s phase=fault faults=pause broker | last 5s: 7.0 req/s, errors 14.3%, p95 500 ms"
"""
from __future__ import annotations

from chaos_events.record import Record
from chaos_events.scenario.model import Plan
from chaos_events.verdict import stats
from chaos_events.verdict.content import format_value, result_word
from chaos_events.verdict.phases import current_phase
from chaos_events.verdict.results import SloResult, SloStatus, Verdict
from chaos_events.verdict.stats import EndpointFilter, ms, pct

PROGRESS_WINDOW_S = 5.0

_STATUS_WORD = {SloStatus.PASS: "PASS", SloStatus.FAIL: "FAIL", SloStatus.NOT_VERIFIABLE: "N/A"}


def _limit_text(result: SloResult) -> str:
    return "—" if result.limit is None else format_value(result.limit, result.unit)


def format_verdict_table(verdict: Verdict) -> str:
    """A plain-text table for the console: SLO, metric, value, limit, PASS/FAIL/N/A, then the overall result."""
    rows = [("SLO", "METRIC", "VALUE", "LIMIT", "RESULT")]
    for r in verdict.results:
        rows.append((r.name, r.metric.value, format_value(r.value, r.unit), _limit_text(r), _STATUS_WORD[r.status]))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in verdict.results:
        if r.status is not SloStatus.PASS:
            lines.append(f"{_STATUS_WORD[r.status]} {r.name} ({r.metric.value}): {r.message}")
    for rf in verdict.summary.get("revert_failures", []):
        lines.append(f"REVERT FAILED {rf['fault_id']} ({rf['fault']}) at t={rf['t']:.1f}s: {rf['detail'] or 'no detail'}")
    for w in verdict.summary.get("workers_lost", []):
        lines.append(f"DATA INCOMPLETE worker {w['worker']} lost at t={w['t']:.1f}s: its requests after that are missing")
    word = result_word(verdict)
    if verdict.summary.get("dry_run"):
        word = "DRY RUN, nothing injected, SLOs not judged"
    lines.append(f"chaos verdict: {word} (exit code {verdict.exit_code})")
    return "\n".join(lines)


def progress_line(record: Record, plan: Plan, t: float, active_faults: list[str]) -> str:
    """One status line for the headless console: phase, active faults, and the last 5 s of traffic."""
    phase = current_phase(record, plan, t)
    flt = EndpointFilter()
    agg = stats.Agg()
    # only the last few seconds: this runs every few seconds on the master, so it must not scan the whole record
    for second in stats.seconds_between(record, t - PROGRESS_WINDOW_S, t):
        for key, window in record.windows.get(second, {}).items():
            if flt.matches(key):
                agg.add(window)
    faults = ", ".join(active_faults) if active_faults else "none"
    span = max(1.0, min(PROGRESS_WINDOW_S, t))  # the first seconds of a run have less than a full window
    return (f"[chaos] t={t:.0f}s phase={phase.value} faults={faults} | last {PROGRESS_WINDOW_S:.0f}s: "
            f"{agg.count / span:.1f} req/s, errors {pct(agg.error_rate)}, p95 {ms(agg.percentile_ms(0.95))}")
