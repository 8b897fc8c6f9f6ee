"""The reports people read, rendered from Jinja2 templates: Markdown (the test results document) and one
self-contained HTML page with an inline SVG timeline.

Imports Jinja2 and the verdict's pure modules; no gevent, locust, docker or prometheus_client, no I/O beyond reading
the templates, which ship inside the package (chaos_events/verdict/templates/*.j2, loaded with PackageLoader, so an
installed wheel finds them).

Every value a template prints is escaped, so text from the scenario or from a failing system can never add markup
or break the layout: HTML autoescaping (plus `escape.printable`) for the HTML and SVG; `escape.md_inline` as the
Markdown environment's `finalize` for the Markdown. Structure lives in the templates' literal text only.

Example:
    report = build_report(verdict, plan, record)
    render_markdown(report).startswith("# Chaos test results: ")
"""
from __future__ import annotations

import functools
from typing import Any

import jinja2
from markupsafe import Markup

from chaos_events.verdict import plot
from chaos_events.verdict.content import format_value
from chaos_events.verdict.escape import md_inline, printable
from chaos_events.verdict.stats import ms, pct, secs

TEMPLATE_PACKAGE = "chaos_events.verdict"
TEMPLATE_DIR = "templates"
MARKDOWN_TEMPLATE = "report.md.j2"
HTML_TEMPLATE = "report.html.j2"
SVG_TEMPLATE = "timeline.svg.j2"
EXIT_WORDS = {0: "every SLO held", 2: "bad input or a harness error", 3: "an SLO was broken",
              4: "a fault could not be reverted", 5: "a stop condition halted the run",
              6: "the experiment is incomplete (a fault not injected, no steady state, or a worker's data lost)"}
SPANS_SHOWN = 4  # a phase's first few spans in the "When" column, then "(+N)"


# -- value formatting shared by both documents -----------------------------------------------------------------------
def change_text(value: float | None, kind: str) -> str:
    """A change from baseline: "+14.3 pts" (kind "points"), "25.00x" ("ratio"), "-53%" ("rel"); "—" when none."""
    if value is None:
        return "—"
    if kind == "points":
        return f"{value * 100:+.1f} pts"
    if kind == "ratio":
        return f"{value:.2f}x"
    return f"{value * 100:+.0f}%"


def rps_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def when_text(spans: list[dict[str, Any]]) -> str:
    """When a phase happened: "30–50s, 80–90s" (its first few spans), "(+N)" for the rest."""
    text = ", ".join(f"{sp['start_t']:.0f}–{sp['end_t']:.0f}s" for sp in spans[:SPANS_SHOWN])
    return text + (f" (+{len(spans) - SPANS_SHOWN})" if len(spans) > SPANS_SHOWN else "")


def detection_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
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


def alert_lines(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(summary, [one line per expected alert]) per alert SLO."""
    out = []
    for a in report["alerts"]:
        head = (f"{a['slo']} ({a['status']}): expected {', '.join(a['expected']) or 'none'}; "
                f"fired {', '.join(a['fired']) or 'none'}. {a['message']}")
        lines = [f"{one['alert']}: " + (f"fired {secs(one['after_s'])} after {one['after_fault']}" if one["fired"]
                                        else "did not fire") for one in a["alerts"]]
        out.append((head, lines))
    return out


_FILTERS = {"value": format_value, "change": change_text, "pct": pct, "ms": ms, "rps": rps_text, "when": when_text}


# -- the two environments ------------------------------------------------------------------------------------------
def _md_finalize(value: Any) -> str:
    return md_inline(str(value))


def _html_finalize(value: Any) -> Any:
    # Autoescaping runs after this; Markup (the included SVG) is already escaped and stays as it is.
    return value if isinstance(value, Markup) or not isinstance(value, str) else printable(value)


def _environment(**options: Any) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_DIR),
                             undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, never prints ""
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, **options)
    env.filters.update(_FILTERS)
    return env


@functools.cache
def markdown_environment() -> jinja2.Environment:
    return _environment(autoescape=False, finalize=_md_finalize)


@functools.cache
def html_environment() -> jinja2.Environment:
    return _environment(autoescape=True, finalize=_html_finalize)


# -- rendering -----------------------------------------------------------------------------------------------------
def _context(report: dict[str, Any]) -> dict[str, Any]:
    return {"report": report, "verdict": report["verdict"], "summary": report["verdict"]["summary"],
            "exit_words": EXIT_WORDS, "alert_lines": alert_lines(report), "detection_rows": detection_rows(report)}


def render_markdown(report: dict[str, Any]) -> str:
    return markdown_environment().get_template(MARKDOWN_TEMPLATE).render(_context(report))


def render_svg(report: dict[str, Any]) -> str:
    """Throughput, error rate and p95 per second; fault windows shaded red, recovery amber, each fault labelled."""
    return html_environment().get_template(SVG_TEMPLATE).render(report=report, plot=plot.timeline(report))


def render_html(report: dict[str, Any]) -> str:
    return html_environment().get_template(HTML_TEMPLATE).render(_context(report), svg=Markup(render_svg(report)))
