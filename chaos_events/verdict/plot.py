"""The geometry of the report's timeline picture: three stacked panels (throughput, error rate, p95 per second)
with fault windows shaded red, recovery windows amber and each fault labelled, as plain data for the SVG template.

Pure module: standard library only (no gevent, locust, docker, prometheus_client, no Jinja2, no I/O). Coordinates
are formatted here ("123.4") so the template only places them; text (labels, titles) is left raw for the
template to escape.

Example:
    picture = timeline(build_report(verdict, plan, record))
    [p.title for p in picture.panels] == ["throughput (req/s)", "error rate (%)", "p95 (ms)"]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, LEFT, RIGHT, PANEL_H, GAP, TOP = 960, 70, 20, 110, 34, 40
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
MAX_TICKS = 8
# (title, series key, factor to the plotted unit, colour)
PANELS = (("throughput (req/s)", "rps", 1.0, "#1f5fa8"), ("error rate (%)", "error_rate", 100.0, "#c0392b"),
          ("p95 (ms)", "p95_ms", 1.0, "#6c3fa0"))
SHADE_FILL = {"fault": "#f4b6b6", "recovery": "#fde9b8"}


@dataclass(frozen=True)
class Shade:
    """A fault or recovery window across every panel; `title` is its tooltip."""

    phase: str
    x: str
    width: str
    fill: str
    title: str


@dataclass(frozen=True)
class Label:
    x: str
    y: int
    text: str


@dataclass(frozen=True)
class Panel:
    """One series: `lines` are polyline point lists ("x,y x,y"); a lone point between gaps is a dot (cx, cy)."""

    title: str
    key: str
    colour: str
    top: int
    bottom: int
    max_text: str
    lines: tuple[str, ...]
    dots: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Timeline:
    """The whole picture. Invariant: every x lies in [left, right]; `ticks` are (x, "30s") per panel."""

    width: int
    height: int
    left: int
    right: int
    shade_top: int
    shade_height: int
    shades: tuple[Shade, ...]
    labels: tuple[Label, ...]
    panels: tuple[Panel, ...]
    ticks: tuple[tuple[str, str], ...]


def nice_max(value: float) -> float:
    """The axis maximum: the smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least `value`."""
    if value <= 0:
        return 1.0
    scale = 10 ** int(f"{value:e}".split("e")[1])
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= value:
            return step * scale
    return value


def timeline(report: dict[str, Any]) -> Timeline:
    points = report["series"]
    end = max(report["duration_s"], points[-1]["t"] + 1 if points else 0.0, 1.0)
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + max(0.0, min(t, end)) / end * plot_w

    shade_top, shade_bottom = TOP - 6, TOP + len(PANELS) * (PANEL_H + GAP) - GAP
    shades = tuple(
        Shade(span["phase"], f"{x(span['start_t']):.1f}", f"{max(1.0, x(span['end_t']) - x(span['start_t'])):.1f}",
              SHADE_FILL[span["phase"]],
              f"{span['phase']} {span['start_t']:.0f}s–{span['end_t']:.0f}s {span['occurrence_id'] or ''}".rstrip())
        for span in report["phases"] if span["phase"] in SHADE_FILL)
    labels = tuple(Label(f"{x(f['start_t']) + 2:.1f}", 14 + (i % 2) * 12, f"{f['fault_type']} {f['target']}")
                   for i, f in enumerate(report["faults"]))
    panels = tuple(_panel(i, spec, points, x) for i, spec in enumerate(PANELS))
    step = next((c for c in TICK_STEPS if end / c <= MAX_TICKS), TICK_STEPS[-1])
    ticks = tuple((f"{x(k * step):.1f}", f"{k * step:.0f}s") for k in range(int(end // step) + 1))
    return Timeline(WIDTH, TOP + len(PANELS) * (PANEL_H + GAP) + 10, LEFT, WIDTH - RIGHT, shade_top, shade_bottom - shade_top,
                    shades, labels, panels, ticks)


def _panel(index: int, spec: tuple[str, str, float, str], points: list[dict[str, Any]], x) -> Panel:
    title, key, factor, colour = spec
    top = TOP + index * (PANEL_H + GAP)
    bottom = top + PANEL_H
    values = [p[key] * factor for p in points if p[key] is not None]
    vmax = nice_max(max(values) if values else 0.0)
    segments: list[list[str]] = [[]]
    for p in points:
        if p[key] is None:  # no traffic in that second: a gap, not a drop to zero
            segments.append([])
            continue
        y = bottom - (p[key] * factor) / vmax * PANEL_H
        segments[-1].append(f"{x(p['t'] + 0.5):.1f},{y:.1f}")
    lines = tuple(" ".join(seg) for seg in segments if len(seg) > 1)
    dots = tuple(tuple(seg[0].split(",")) for seg in segments if len(seg) == 1)
    return Panel(title, key, colour, top, bottom, f"{vmax:g}", lines, dots)
