"""The chart of a result document, as SVG written by hand (no plotting library). No I/O: returns text.

Three panels: the phases of a cold run (p50 of each, stacked, per runtime), the phases of a warm run (same),
and the latency CDF of the warm runs, the cold runs and the docker baselines on a log axis.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

from .report import busy_warning
from .stats import cdf_points

WIDTH = 960
PHASE_COLOURS = {
    "prepare": "#9e9e9e", "create": "#1f77b4", "attach": "#aec7e8", "start": "#ff7f0e", "ready": "#ffbb78",
    "configure": "#c5b0d5", "acquire": "#17becf", "inject": "#2ca02c", "process": "#98df8a",
    "collect": "#d62728", "release": "#9467bd", "finish": "#8c564b",
}
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf")
_FONT = 'font-family="Helvetica, Arial, sans-serif"'


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start", weight: str = "normal",
          fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}" {_FONT}>{escape(text)}</text>')


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _phase_panel(results: list[dict], title: str, top: float) -> tuple[list[str], float]:
    """Stacked bars of phase p50s, one per result; returns the SVG parts and the panel's bottom."""
    parts = [_text(20, top + 16, title, 14, weight="bold")]
    if not results:
        parts.append(_text(20, top + 40, "not measured", 12, fill="#888"))
        return parts, top + 56
    left, right, bar, gap = 190, WIDTH - 110, 18, 8
    totals = [sum(r["phases"][p]["p50"] for p in r["phase_order"] if r["phases"].get(p, {}).get("n"))
              for r in results]
    scale_max = _nice_max(max(totals + [r["latency"]["p50"] for r in results]))
    y = top + 30
    axis_y = y + len(results) * (bar + gap)
    for i in range(6):
        value = scale_max * i / 5
        x = left + (right - left) * i / 5
        parts.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x:.1f}" y2="{axis_y:.1f}" stroke="#e4e4e4"/>')
        parts.append(_text(x, axis_y + 14, f"{value:g}", 10, "middle", fill="#555"))
    parts.append(_text(right + 26, axis_y + 14, "ms", 10, fill="#555"))
    used: list[str] = []
    for result, total in zip(results, totals):
        parts.append(_text(left - 8, y + bar - 5, result["id"], 11, "end"))
        x = left
        for phase in result["phase_order"]:
            summary = result["phases"].get(phase)
            if not summary or not summary.get("n"):
                continue
            width = (right - left) * summary["p50"] / scale_max
            colour = PHASE_COLOURS.get(phase, "#cccccc")
            parts.append(f'<rect x="{x:.2f}" y="{y:.1f}" width="{max(width, 0):.2f}" height="{bar}" '
                         f'fill="{colour}"><title>{escape(phase)}: p50 {summary["p50"]:.2f} ms</title></rect>')
            x += width
            if phase not in used:
                used.append(phase)
        p50 = result["latency"]["p50"]
        marker = left + (right - left) * p50 / scale_max
        parts.append(f'<line x1="{marker:.1f}" y1="{y - 3:.1f}" x2="{marker:.1f}" y2="{y + bar + 3:.1f}" '
                     f'stroke="#000" stroke-width="1.5"/>')
        parts.append(_text(max(x, marker) + 6, y + bar - 5, f"p50 {p50:.1f} ms", 10, fill="#333"))
        y += bar + gap
    legend_y = axis_y + 34
    x = left
    for phase in used:
        parts.append(f'<rect x="{x:.1f}" y="{legend_y - 9:.1f}" width="10" height="10" '
                     f'fill="{PHASE_COLOURS.get(phase, "#ccc")}"/>')
        parts.append(_text(x + 14, legend_y, phase, 10))
        x += 22 + 6.5 * len(phase)
    parts.append(_text(left, legend_y + 16, "bars: p50 of each phase, stacked; black tick: p50 of the whole run",
                       10, fill="#666"))
    return parts, legend_y + 26


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10 ** exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


def _cdf_panel(results: list[dict], top: float) -> tuple[list[str], float]:
    parts = [_text(20, top + 16, "Latency CDF (log scale)", 14, weight="bold")]
    series = [r for r in results if r["samples"]]
    if not series:
        parts.append(_text(20, top + 40, "not measured", 12, fill="#888"))
        return parts, top + 56
    left, right, plot_top, height = 70, WIDTH - 230, top + 30, 300
    bottom = plot_top + height
    values = [v for r in series for v in r["samples"] if v > 0]
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values)))
    if high <= low:
        high = low * 10
    span = math.log10(high) - math.log10(low)

    def sx(value: float) -> float:
        return left + (right - left) * (math.log10(max(value, low)) - math.log10(low)) / span

    def sy(fraction: float) -> float:
        return bottom - height * fraction

    for tick in _log_ticks(low, high):
        x = sx(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{plot_top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#e4e4e4"/>')
        parts.append(_text(x, bottom + 14, f"{tick:g}", 10, "middle", fill="#555"))
    for fraction in (0, 0.25, 0.5, 0.75, 0.9, 1.0):
        y = sy(fraction)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eeeeee"/>')
        parts.append(_text(left - 6, y + 3, f"{fraction:g}", 10, "end", fill="#555"))
    parts.append(f'<rect x="{left}" y="{plot_top:.1f}" width="{right - left}" height="{height}" fill="none" '
                 f'stroke="#999"/>')
    parts.append(_text((left + right) / 2, bottom + 30, "latency, ms", 11, "middle", fill="#333"))
    parts.append(f'<text transform="translate(24 {plot_top + height / 2:.1f}) rotate(-90)" font-size="11" '
                 f'text-anchor="middle" fill="#333" {_FONT}>fraction of runs</text>')
    for index, result in enumerate(series):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = cdf_points(result["samples"])
        path = [f"{sx(points[0][0]):.1f},{sy(0):.1f}"]
        previous = 0.0
        for value, fraction in points:
            path.append(f"{sx(value):.1f},{sy(previous):.1f}")
            path.append(f"{sx(value):.1f},{sy(fraction):.1f}")
            previous = fraction
        parts.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="1.6">'
                     f'<title>{escape(result["id"])}</title></polyline>')
        legend_y = plot_top + 10 + index * 16
        parts.append(f'<line x1="{right + 14}" y1="{legend_y - 4:.1f}" x2="{right + 34}" y2="{legend_y - 4:.1f}" '
                     f'stroke="{colour}" stroke-width="2.5"/>')
        parts.append(_text(right + 40, legend_y, f"{result['id']} ({result['latency']['p50']:.1f})", 10))
    return parts, bottom + 44


def chart_svg(document: dict[str, Any]) -> str:
    """The whole chart as an SVG document."""
    ok = [r for r in document["results"] if r["status"] == "ok" and r["latency"].get("n")]
    cold = [r for r in ok if r["group"] == "cold" and r["phases"]]
    warm = [r for r in ok if r["group"] == "warm" and r["phases"]]
    # Every warm runtime, then python's other paths: cold, the two baselines, the server, a session.
    python = ("cold.python", "baseline.python.exec", "baseline.python.run", "server.python.server", "session.python")
    by_id = {r["id"]: r for r in ok}
    cdf = [r for r in ok if r["group"] == "warm"] + [by_id[i] for i in python if i in by_id]
    machine = document["machine"]
    parts = [_text(20, 28, f"isol8rt bench, {document['created']}", 18, weight="bold"),
             _text(20, 48, f"{machine.get('cores')} cores, {(machine.get('memory_bytes') or 0) / 2**30:.0f} GiB, "
                           f"kernel {machine.get('kernel')}, docker {machine.get('docker_version')}, "
                           f"isol8rt {machine.get('isol8rt')} ({(machine.get('git_commit') or '?')[:10]})"
                           f"{', quick' if document['settings'].get('quick') else ''}", 11, fill="#444")]
    top = 56.0
    warning = busy_warning(machine)
    if warning:
        parts.append(_text(20, 68, warning, 11, fill="#b00020"))
        top = 74.0
    panel, top = _phase_panel(cold, "Cold run: fresh engine, one container made, used, removed", top + 8)
    parts += panel
    panel, top = _phase_panel(warm, "Warm run: execute() through the fast pool", top + 8)
    parts += panel
    panel, top = _cdf_panel(cdf[: len(SERIES_COLOURS)], top + 8)
    parts += panel
    height = int(top + 10)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}">\n<rect width="100%" height="100%" fill="#ffffff"/>\n'
            + "\n".join(parts) + "\n</svg>\n")
