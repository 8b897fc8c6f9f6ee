"""Writing the four reports of a run (JSON, JUnit XML, Markdown, HTML with an inline SVG timeline), and reading a
record back for `chaos-events report`.

The verdict's only module that does I/O, beyond the templates documents.py reads: every file is written
atomically (temporary file in the same directory, then os.replace), so a reader never sees half a report. No
gevent, locust, docker or prometheus_client.

All four files render one dict built by `build_report` (content.py), so they always say the same thing:
content.py (the dict and its JSON), junit.py (xml.etree), documents.py (Jinja2 templates for Markdown and HTML),
plot.py (the timeline picture's geometry), console.py (the verdict table and the progress line).

Example:
    verdict = evaluate(plan, record)
    paths = write_reports(verdict, plan, record, Path("reports"))
    paths["junit"].name == "chaos-report.xml"
"""
from __future__ import annotations

import json
from pathlib import Path

from chaos_events.atomic import atomic_write_text
from chaos_events.errors import ChaosError, Problem
from chaos_events.record import Record
from chaos_events.scenario.model import Plan
from chaos_events.verdict.console import PROGRESS_WINDOW_S, format_verdict_table, progress_line
from chaos_events.verdict.content import REPORT_SCHEMA, build_report, format_value, render_json, series
from chaos_events.verdict.documents import render_html, render_markdown, render_svg
from chaos_events.verdict.junit import render_junit
from chaos_events.verdict.results import Verdict

__all__ = [
    "REPORT_FILES", "REPORT_SCHEMA", "PROGRESS_WINDOW_S", "write_reports", "load_record",
    "build_report", "format_value", "series", "format_verdict_table", "progress_line",
    "render_json", "render_junit", "render_markdown", "render_html", "render_svg", "atomic_write_text",
]

REPORT_FILES = {
    "json": "chaos-report.json",
    "junit": "chaos-report.xml",
    "markdown": "chaos-report.md",
    "html": "chaos-report.html",
}
RENDERERS = {"json": render_json, "junit": render_junit, "markdown": render_markdown, "html": render_html}


def _write_report(path: Path, text: str) -> None:
    # Reports are read by CI and colleagues: 0644, not mkstemp's 0600.
    atomic_write_text(path, text, mode=0o644)


def write_reports(verdict: Verdict, plan: Plan, record: Record, out_dir: str | Path) -> dict[str, Path]:
    """Write the four reports into `out_dir` (created if missing). Returns {"json"|"junit"|"markdown"|"html": path}."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChaosError(f"{out}: cannot create the report directory: {exc.strerror or exc}") from exc
    report = build_report(verdict, plan, record)
    paths = {}
    for kind, render in RENDERERS.items():
        path = out / REPORT_FILES[kind]
        try:
            _write_report(path, render(report))
        except OSError as exc:
            raise ChaosError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
        paths[kind] = path
    return paths


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
