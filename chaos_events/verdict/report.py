"""The four reports of a run (JSON, JUnit XML, Markdown, HTML with an inline SVG timeline) and the console lines.

Standard library only: no gevent, locust, docker or prometheus_client. This is the verdict's only module that does
I/O (writing report files, reading a record back for `chaos-events report`), and every file is written atomically
(temporary file in the same directory, then os.replace), so a reader never sees half a report.

All four files render one dict built by `build_report`, so they always say the same thing.

Example:
    verdict = evaluate(plan, record)
    paths = write_reports(verdict, plan, record, Path("reports"))
    paths["junit"].name == "chaos-report.xml"
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from chaos_events.atomic import atomic_write_text
from chaos_events.errors import ChaosError, Problem
from chaos_events.scenario.plan import Plan, SloMetric
from chaos_events.record import FaultEventKind, Record
from chaos_events.verdict import stats
from chaos_events.verdict.figures import phase_figures
from chaos_events.verdict.phases import current_phase, derive_phases, fault_occurrences, run_end
from chaos_events.verdict.slo import SloResult, SloStatus, Verdict, evaluate
from chaos_events.verdict.stats import EndpointFilter, ms, pct, secs

REPORT_FILES = {
    "json": "chaos-report.json",
    "junit": "chaos-report.xml",
    "markdown": "chaos-report.md",
    "html": "chaos-report.html",
}
REPORT_SCHEMA = "chaos-events.report/1"
PROGRESS_WINDOW_S = 5.0

_STATUS_WORD = {SloStatus.PASS: "PASS", SloStatus.FAIL: "FAIL", SloStatus.NOT_VERIFIABLE: "N/A"}

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


# -- the shared content ------------------------------------------------------------------------------------------
def _iso(wall: float) -> str:
    return _dt.datetime.fromtimestamp(wall, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return pct(value)
    if unit == "s":
        return secs(value)
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g}" + (f" {unit}" if unit else "")


def _limit_text(result: SloResult) -> str:
    if result.limit is None:
        return "—"
    return format_value(result.limit, result.unit)


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
             "detail": e.detail} for e in sorted(record.events, key=lambda e: e.t)]


def _alerts(verdict: Verdict) -> list[dict[str, Any]]:
    out = []
    for r in verdict.results:
        if r.metric is SloMetric.ALERTS_FIRED:
            out.append({"slo": r.name, "status": r.status.value, "expected": r.details.get("expected", []),
                        "fired": r.details.get("fired", []), "alerts": r.details.get("alerts", []),
                        "message": r.message})
    return out


def _times(verdict: Verdict) -> list[dict[str, Any]]:
    out = []
    for r in verdict.results:
        if r.metric in (SloMetric.DETECTION_TIME, SloMetric.RECOVERY_TIME):
            for occ in r.details.get("occurrences", []):
                out.append({"slo": r.name, "metric": r.metric.value, **occ})
    return out


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
        "result": "REVERT FAILED" if verdict.revert_failed else ("PASS" if verdict.ok else "FAIL"),
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


# -- JSON ----------------------------------------------------------------------------------------------------------
_COMPACT_KEYS = frozenset({"record", "series"})  # large: indenting them would triple the file and the time to write it


def render_json(report: dict[str, Any]) -> str:
    items = [f"  {json.dumps(key)}: " + json.dumps(value, default=str, indent=None if key in _COMPACT_KEYS else 2)
             for key, value in report.items()]
    return "{\n" + ",\n".join(items) + "\n}\n"


# -- JUnit XML -----------------------------------------------------------------------------------------------------
def render_junit(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    results = verdict["results"]
    suite_name = f"chaos-events.{report['scenario']}"
    reverts = verdict["summary"].get("revert_failures", [])
    injected = any(f for f in report["faults"] if not f["from_plan"])
    tests = len(results) + (1 if injected or reverts else 0)
    failures = sum(1 for r in results if r["status"] == SloStatus.FAIL.value) + (1 if reverts else 0)
    skipped = sum(1 for r in results if r["status"] == SloStatus.NOT_VERIFIABLE.value)
    root = ET.Element("testsuites", name="chaos-events", tests=str(tests), failures=str(failures),
                      errors="0", skipped=str(skipped), time=f"{report['duration_s']:.3f}")
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(tests), failures=str(failures), errors="0",
                          skipped=str(skipped), time=f"{report['duration_s']:.3f}",
                          timestamp=report["date"].replace(" UTC", "").replace(" ", "T"))
    props = ET.SubElement(suite, "properties")
    for key in ("run_id", "source", "result"):
        ET.SubElement(props, "property", name=key, value=str(report[key]))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=r["name"], time="0")
        headline = f"{r['metric']}: {r['message']}"
        if r["status"] == SloStatus.FAIL.value:
            failure = ET.SubElement(case, "failure", message=headline, type=r["metric"])
            failure.text = json.dumps(r["details"], indent=2, default=str)
        elif r["status"] == SloStatus.NOT_VERIFIABLE.value:
            ET.SubElement(case, "skipped", message=f"not verifiable: {headline}")
        else:
            ET.SubElement(case, "system-out").text = headline
    if injected or reverts:
        # a failed revert is not an SLO, but CI must see it: the system was left degraded (exit code 4)
        case = ET.SubElement(suite, "testcase", classname=suite_name, name="faults reverted", time="0")
        if reverts:
            what = "; ".join(f"{r['fault_id']} ({r['fault']}) at t={r['t']:.1f}s: {r['detail'] or 'no detail'}" for r in reverts)
            ET.SubElement(case, "failure", message=f"revert failed: {what}", type="revert_failed").text = what
        else:
            ET.SubElement(case, "system-out").text = "every injected fault was reverted"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- Markdown ------------------------------------------------------------------------------------------------------
def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _change(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "points":
        return f"{value * 100:+.1f} pts"
    if kind == "ratio":
        return f"{value:.2f}x"
    return f"{value * 100:+.0f}%"


def _rps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _detection_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(slo, metric, fault, what happened) per fault occurrence of every detection / recovery SLO."""
    rows = []
    for d in report["detection_recovery"]:
        if d["metric"] == "detection_time":
            what = (f"detected {secs(d['detection_s'])} after injection at {d['injected_t']:.1f}s ({d['signal']})"
                    if d.get("detection_s") is not None else f"not detected (injected at {d['injected_t']:.1f}s)")
        else:
            what = (f"recovered {secs(d['recovery_s'])} after revert at {d['measured_from_t']:.1f}s"
                    if d.get("recovery_s") is not None else f"did not recover: {d.get('reason', '')}")
        rows.append((d["slo"], d["metric"], d["fault"], what))
    return rows


def _alert_lines(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(summary, [one line per expected alert]) per alert SLO."""
    out = []
    for a in report["alerts"]:
        head = (f"{a['slo']} ({a['status']}): expected {', '.join(a['expected']) or 'none'}; "
                f"fired {', '.join(a['fired']) or 'none'}. {a['message']}")
        lines = [f"{one['alert']}: " + (f"fired {secs(one['after_s'])} after {one['after_fault']}" if one["fired"]
                                        else "did not fire") for one in a["alerts"]]
        out.append((head, lines))
    return out


def render_markdown(report: dict[str, Any]) -> str:
    v = report["verdict"]
    s = v["summary"]
    lines = [f"# Chaos test results: {report['scenario']}", ""]
    exit_words = {0: "every SLO held", 3: "an SLO was broken", 4: "a fault could not be reverted"}
    lines += [
        f"- **Date:** {report['date']}",
        f"- **Scenario:** {report['scenario']}" + (f": {report['description']}" if report["description"] else "")
        + (f" (`{report['source']}`)" if report["source"] else ""),
        f"- **Run id:** {report['run_id']}",
        f"- **Duration:** {report['duration_s']:.0f}s",
        f"- **Result:** **{report['result']}** (exit code {v['exit_code']}: {exit_words.get(v['exit_code'], '')})",
        f"- **SLOs:** {s.get('pass', 0)} passed, {s.get('fail', 0)} failed, {s.get('not_verifiable', 0)} not verifiable",
        "",
        "## SLOs",
        "",
        "| SLO | Metric | Result | Value | Limit | What happened |",
        "|---|---|---|---|---|---|",
    ]
    for r in v["results"]:
        word = {"pass": "PASS", "fail": "**FAIL**", "not_verifiable": "N/A"}[r["status"]]
        lines.append(f"| {_md(r['name'])} | {r['metric']} | {word} | {_md(format_value(r['value'], r['unit']))} | "
                     f"{_md(format_value(r['limit'], r['unit']) if r['limit'] is not None else '—')} | {_md(r['message'])} |")
    if not v["results"]:
        lines.append("| (none) | | | | | the scenario declares no SLOs |")
    lines += ["", "## Observed behaviour per phase", "",
              "All user endpoints (the harness's own `[chaos] ` traffic excluded).", "",
              "| Phase | When | Requests | Error rate | Change | p95 | Change | Throughput (req/s) | Change |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, row in report["phase_stats"].items():
        when = ", ".join(f"{sp['start_t']:.0f}–{sp['end_t']:.0f}s" for sp in row["spans"][:4])
        when += f" (+{len(row['spans']) - 4})" if len(row["spans"]) > 4 else ""
        lines.append(f"| {name} | {when} | {row['requests']} | {pct(row['error_rate'])} | "
                     f"{_change(row.get('error_rate_change'), 'points') if name != 'baseline' else '—'} | "
                     f"{ms(row['p95_ms'])} | {_change(row.get('p95_ratio'), 'ratio') if name != 'baseline' else '—'} | "
                     f"{_rps(row['rps'])} | {_change(row.get('rps_change'), 'rel') if name != 'baseline' else '—'} |")
    if not report["phase_stats"]:
        lines.append("| (none) | | | | | | | | |")
    lines += ["", "## Faults timeline", ""]
    if report["timeline"]:
        lines += ["| t | Event | Fault | Type | Target | Detail |", "|---|---|---|---|---|---|"]
        for e in report["timeline"]:
            lines.append(f"| {e['t']:.1f}s | {e['kind']} | {_md(e['fault_id'])} | {_md(e['fault_type'])} | "
                         f"{_md(e['target'])} | {_md(e['detail'])} |")
    elif report["faults"]:
        lines.append("No fault events were recorded; the plan's schedule:")
        lines.append("")
        for f in report["faults"]:
            lines.append(f"- {f['fault_id']}: {f['fault_type']} {f['target']} at {f['start_t']:.0f}s–{f['end_t']:.0f}s (planned)")
    else:
        lines.append("No faults.")
    lines += ["", "## Alerts: expected vs fired", ""]
    if report["alerts"]:
        for head, per_alert in _alert_lines(report):
            lines.append(f"- {_md(head)}")
            lines += [f"  - {_md(line)}" for line in per_alert]
    else:
        lines.append("No alert SLOs in this scenario.")
    lines += ["", "## Detection and recovery", ""]
    if report["detection_recovery"]:
        lines += ["| SLO | Metric | Fault | Result |", "|---|---|---|---|"]
        lines += [f"| {_md(a)} | {b} | {_md(c)} | {_md(d)} |" for a, b, c, d in _detection_rows(report)]
    else:
        lines.append("No detection or recovery SLOs were measured.")
    lines += ["", "## Unexpected behaviour", ""]
    lines += [f"- {_md(u)}" for u in report["unexpected"]] or ["None observed."]
    lines += ["", "## Action items", ""]
    lines += [f"- [ ] {_md(a)}" for a in report["action_items"]] or ["None: every SLO held."]
    lines.append("")
    return "\n".join(lines)


# -- HTML with an inline SVG timeline ------------------------------------------------------------------------------
_SVG_W, _LEFT, _RIGHT, _PANEL_H, _GAP, _TOP = 960, 70, 20, 110, 34, 40
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 2.5, 5, 10):
        scale = 10 ** int(f"{value:e}".split("e")[1])
        if step * scale >= value:
            return step * scale
    return value


def render_svg(report: dict[str, Any]) -> str:
    """Throughput, error rate and p95 per second; fault windows shaded red, recovery amber, each fault labelled."""
    points = report["series"]
    end = max(report["duration_s"], points[-1]["t"] + 1 if points else 0.0, 1.0)
    plot_w = _SVG_W - _LEFT - _RIGHT
    panels = [("throughput (req/s)", "rps", 1.0), ("error rate (%)", "error_rate", 100.0), ("p95 (ms)", "p95_ms", 1.0)]
    height = _TOP + len(panels) * (_PANEL_H + _GAP) + 10

    def x(t: float) -> float:
        return _LEFT + max(0.0, min(t, end)) / end * plot_w

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{height}" '
           f'viewBox="0 0 {_SVG_W} {height}" font-family="sans-serif" font-size="11" role="img" '
           f'aria-label="timeline of throughput, error rate and p95">']
    out.append(f'<title>{_esc(report["scenario"])}: throughput, error rate and p95 per second</title>')
    # fault and recovery windows, shaded across every panel
    shade_top, shade_bottom = _TOP - 6, _TOP + len(panels) * (_PANEL_H + _GAP) - _GAP
    for span in report["phases"]:
        if span["phase"] in ("fault", "recovery"):
            fill = "#f4b6b6" if span["phase"] == "fault" else "#fde9b8"
            out.append(f'<rect class="{span["phase"]}" x="{x(span["start_t"]):.1f}" y="{shade_top}" '
                       f'width="{max(1.0, x(span["end_t"]) - x(span["start_t"])):.1f}" height="{shade_bottom - shade_top}" '
                       f'fill="{fill}" fill-opacity="0.6"><title>{_esc(span["phase"])} {span["start_t"]:.0f}s–'
                       f'{span["end_t"]:.0f}s {_esc(span["occurrence_id"] or "")}</title></rect>')
    for i, f in enumerate(report["faults"]):
        label = f"{f['fault_type']} {f['target']}"
        out.append(f'<text x="{x(f["start_t"]) + 2:.1f}" y="{14 + (i % 2) * 12}" fill="#8a1c1c">{_esc(label)}</text>')
    for i, (title, key, factor) in enumerate(panels):
        top = _TOP + i * (_PANEL_H + _GAP)
        bottom = top + _PANEL_H
        values = [p[key] * factor for p in points if p[key] is not None]
        vmax = _nice_max(max(values) if values else 0.0)
        out.append(f'<text x="{_LEFT}" y="{top - 8}" font-weight="bold">{_esc(title)}</text>')
        out.append(f'<line x1="{_LEFT}" y1="{bottom}" x2="{_SVG_W - _RIGHT}" y2="{bottom}" stroke="#444"/>')
        out.append(f'<line x1="{_LEFT}" y1="{top}" x2="{_LEFT}" y2="{bottom}" stroke="#444"/>')
        out.append(f'<text x="{_LEFT - 4}" y="{top + 4}" text-anchor="end">{vmax:g}</text>')
        out.append(f'<text x="{_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>')
        segments, current = [], []
        for p in points:
            if p[key] is None:
                if current:
                    segments.append(current)
                current = []
                continue
            y = bottom - (p[key] * factor) / vmax * _PANEL_H
            current.append(f"{x(p['t'] + 0.5):.1f},{y:.1f}")
        if current:
            segments.append(current)
        color = {"rps": "#1f5fa8", "error_rate": "#c0392b", "p95_ms": "#6c3fa0"}[key]
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{color}"/>')
            else:
                out.append(f'<polyline class="series-{key}" fill="none" stroke="{color}" stroke-width="1.5" '
                           f'points="{" ".join(seg)}"/>')
        step = next((c for c in _TICK_STEPS if end / c <= 8), _TICK_STEPS[-1])
        for k in range(int(end // step) + 1):
            t = k * step
            out.append(f'<text x="{x(t):.1f}" y="{bottom + 13}" text-anchor="middle" fill="#555">{t:.0f}s</text>')
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{margin-bottom:4px} .pass{color:#1e7d32;font-weight:bold} .fail{color:#b71c1c;font-weight:bold}
.na{color:#777;font-weight:bold} table{border-collapse:collapse;margin:8px 0 20px} th,td{border:1px solid #ccc;
padding:4px 8px;text-align:left;vertical-align:top;font-size:13px} th{background:#f2f2f2}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


def render_html(report: dict[str, Any]) -> str:
    v = report["verdict"]
    cls = {"PASS": "pass", "FAIL": "fail", "REVERT FAILED": "fail"}[report["result"]]
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>Chaos report: {_esc(report['scenario'])}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>Chaos report: {_esc(report['scenario'])}</h1>",
        f"<p>{_esc(report['description'])}</p>" if report["description"] else "",
        f"<p>Date {_esc(report['date'])} · run {_esc(report['run_id'])} · duration {report['duration_s']:.0f}s · "
        f'result <span class="{cls}">{_esc(report["result"])}</span> (exit code {v["exit_code"]})</p>',
        "<h2>Timeline</h2>",
        '<p class="legend"><span style="background:#f4b6b6"></span>fault<span style="background:#fde9b8"></span>'
        "recovery window</p>",
        render_svg(report),
        "<h2>SLOs</h2>",
        "<table><tr><th>SLO</th><th>Metric</th><th>Result</th><th>Value</th><th>Limit</th><th>What happened</th></tr>",
    ]
    for r in v["results"]:
        word, c = {"pass": ("PASS", "pass"), "fail": ("FAIL", "fail"), "not_verifiable": ("N/A", "na")}[r["status"]]
        limit = format_value(r["limit"], r["unit"]) if r["limit"] is not None else "—"
        parts.append(f"<tr><td>{_esc(r['name'])}</td><td>{_esc(r['metric'])}</td><td class=\"{c}\">{word}</td>"
                     f"<td>{_esc(format_value(r['value'], r['unit']))}</td><td>{_esc(limit)}</td>"
                     f"<td>{_esc(r['message'])}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Observed behaviour per phase</h2><table><tr><th>Phase</th><th>Requests</th><th>Error rate</th>"
                 "<th>Change</th><th>p95</th><th>Change</th><th>req/s</th><th>Change</th></tr>")
    for name, row in report["phase_stats"].items():
        parts.append(f"<tr><td>{_esc(name)}</td><td>{row['requests']}</td><td>{pct(row['error_rate'])}</td>"
                     f"<td>{_change(row.get('error_rate_change'), 'points')}</td><td>{ms(row['p95_ms'])}</td>"
                     f"<td>{_change(row.get('p95_ratio'), 'ratio')}</td><td>{_rps(row['rps'])}</td>"
                     f"<td>{_change(row.get('rps_change'), 'rel')}</td></tr>")
    parts.append("</table><h2>Faults timeline</h2>")
    if report["timeline"]:
        parts.append("<table><tr><th>t</th><th>Event</th><th>Fault</th><th>Type</th><th>Target</th><th>Detail</th></tr>")
        for e in report["timeline"]:
            parts.append(f"<tr><td>{e['t']:.1f}s</td><td>{_esc(e['kind'])}</td><td>{_esc(e['fault_id'])}</td>"
                         f"<td>{_esc(e['fault_type'])}</td><td>{_esc(e['target'])}</td><td>{_esc(e['detail'])}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No fault events were recorded.</p>")
    parts.append("<h2>Alerts: expected vs fired</h2>")
    if report["alerts"]:
        parts.append("<ul>" + "".join(
            f"<li>{_esc(head)}" + ("<ul>" + "".join(f"<li>{_esc(x)}</li>" for x in per) + "</ul>" if per else "") + "</li>"
            for head, per in _alert_lines(report)) + "</ul>")
    else:
        parts.append("<p>No alert SLOs in this scenario.</p>")
    parts.append("<h2>Detection and recovery</h2>")
    rows = _detection_rows(report)
    if rows:
        parts.append("<table><tr><th>SLO</th><th>Metric</th><th>Fault</th><th>Result</th></tr>" + "".join(
            f"<tr><td>{_esc(a)}</td><td>{_esc(b)}</td><td>{_esc(c)}</td><td>{_esc(d)}</td></tr>" for a, b, c, d in rows)
            + "</table>")
    else:
        parts.append("<p>No detection or recovery SLOs were measured.</p>")
    for title, key in (("Unexpected behaviour", "unexpected"), ("Action items", "action_items")):
        parts.append(f"<h2>{title}</h2>")
        parts.append("<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in report[key]) + "</ul>" if report[key]
                     else "<p>None.</p>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(p for p in parts if p != "")


def _write_report(path: Path, text: str) -> None:
    # Reports are read by CI and colleagues: 0644, not mkstemp's 0600.
    atomic_write_text(path, text, mode=0o644)


# -- writing -------------------------------------------------------------------------------------------------------
def write_reports(verdict: Verdict, plan: Plan, record: Record, out_dir: str | Path) -> dict[str, Path]:
    """Write the four reports into `out_dir` (created if missing). Returns {"json"|"junit"|"markdown"|"html": path}."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChaosError(f"{out}: cannot create the report directory: {exc.strerror or exc}") from exc
    report = build_report(verdict, plan, record)
    renderers = {"json": render_json, "junit": render_junit, "markdown": render_markdown, "html": render_html}
    paths = {}
    for kind, render in renderers.items():
        path = out / REPORT_FILES[kind]
        try:
            _write_report(path, render(report))
        except OSError as exc:
            raise ChaosError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
        paths[kind] = path
    return paths


# -- console -------------------------------------------------------------------------------------------------------
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
    word = "REVERT FAILED" if verdict.revert_failed else ("PASS" if verdict.ok else "FAIL")
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


# -- reading back (`chaos-events report`) --------------------------------------------------------------------------
def load_record(path: str | Path) -> Record:
    """A Record from a JSON file: a record's own to_dict(), or a chaos-report.json (its "record" key)."""
    path = Path(path)
    expected = "expected a chaos-report.json or a run record written by the harness"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChaosError(str(Problem(str(path), None, "", f"cannot read the run record: {exc.strerror or exc}"))) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChaosError(str(Problem(str(path), exc.lineno, "", f"not valid JSON: {exc.msg}; {expected}"))) from exc
    if isinstance(data, dict) and isinstance(data.get("record"), dict):
        data = data["record"]  # a chaos-report.json carries the full record under "record"
    if not isinstance(data, dict):
        raise ChaosError(str(Problem(str(path), None, "", f"not a run record: the top level is a {type(data).__name__}; {expected}")))
    missing = [k for k in ("run_id", "scenario", "start_wall") if k not in data]
    if missing:
        raise ChaosError(str(Problem(str(path), None, "", f"not a run record: missing {', '.join(repr(k) for k in missing)}; {expected}")))
    try:
        return Record.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChaosError(str(Problem(str(path), None, "", f"not a run record: {exc}; {expected}"))) from exc


def report_from_files(record_json: str | Path, plan_path: str | Path, out_dir: str | Path) -> tuple[Verdict, dict[str, Path]]:
    """Re-judge a saved record against a scenario and write the four reports (the `chaos-events report` command)."""
    from chaos_events.scenario.plan import load_plan

    record = load_record(record_json)
    # judging a past run: the targets need not exist on this machine now
    plan = load_plan(str(plan_path), check_targets=False)
    verdict = evaluate(plan, record)
    return verdict, write_reports(verdict, plan, record, out_dir)
