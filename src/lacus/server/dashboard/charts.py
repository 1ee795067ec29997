"""Plots as inline SVG, drawn on the server: bars over time, a histogram, the colour class of a
success rate. Pure functions of their data; no script, no style attribute (the page's Content
Security Policy allows neither): colours come from CSS classes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 10, 22
"""The plot area's margins: room for the axis labels."""

Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """The time axis of a chart: from ``since`` to ``until``, bars ``bucket`` wide."""

    since: datetime
    until: datetime
    bucket: timedelta


@dataclass(frozen=True, slots=True)
class Layer:
    """One series of a bar chart: its CSS class (colour), its name (legend, tooltips), and a
    value per bar. Layers stack."""

    css: str
    name: str
    values: Sequence[float]


def time_bars(
    starts: Sequence[datetime],
    layers: Sequence[Layer],
    *,
    axis: TimeAxis,
    fmt: Format,
    label: str,
    marks: Layer | None = None,
) -> Markup:
    """Stacked bars, one per time bucket starting at ``starts[i]``, on a time axis from
    ``axis.since`` to ``axis.until``; ``marks`` draws a tick per bucket at its value (e.g. a
    maximum)."""
    since, until, bucket = axis.since, axis.until, axis.bucket
    span = max((until - since).total_seconds(), 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(layer.values[i] for layer in layers) for i in range(len(starts))]
    top = max([*totals, *(marks.values if marks else ()), 0.0])
    scale = _nice(top)

    def x(moment: datetime) -> float:
        return LEFT + plot_w * max(0.0, min(1.0, (moment - since).total_seconds() / span))

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / scale)

    width = max(1.0, plot_w * bucket.total_seconds() / span - 1)
    right = WIDTH - RIGHT

    def bar_width(start: datetime) -> float:  # the newest bucket ends in the future: cut it
        return max(1.0, min(width, right - x(start)))

    parts = [_frame(fmt(scale), fmt(0), since, until)]
    for i, start in enumerate(starts):
        base = 0.0
        for layer in layers:
            value = layer.values[i]
            if value <= 0:
                continue
            tip = f"{start:%Y-%m-%d %H:%M}Z · {layer.name}: {fmt(value)}"
            parts.append(
                f'<rect class="{layer.css}" x="{x(start):.1f}" y="{y(base + value):.1f}" '
                f'width="{bar_width(start):.1f}" height="{y(base) - y(base + value):.1f}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            base += value
        if marks is not None and marks.values[i] > 0:
            tip = f"{start:%Y-%m-%d %H:%M}Z · {marks.name}: {fmt(marks.values[i])}"
            left, level = x(start), y(marks.values[i])
            parts.append(
                f'<line class="{marks.css}" x1="{left:.1f}" x2="{left + bar_width(start):.1f}" '
                f'y1="{level:.1f}" y2="{level:.1f}">'
                f"<title>{escape(tip)}</title></line>"
            )
    legend = [*layers, *([marks] if marks else [])]
    return _svg(label, parts, legend)


def histogram(
    bins: Sequence[tuple[str, int]], *, label: str, ticks: Sequence[str] | None = None
) -> Markup:
    """Vertical bars, one per bin ``(name, count)``, labelled below with ``ticks`` (default:
    the names; the names are the tooltips)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    scale = _nice(max([count for _, count in bins] + [0]))
    step = plot_w / max(len(bins), 1)
    parts = [_axes(_count(scale), "0")]
    for i, (name, count) in enumerate(bins):
        left = LEFT + i * step
        height = plot_h * count / scale
        parts.append(
            f'<rect class="bar" x="{left + 1:.1f}" y="{TOP + plot_h - height:.1f}" '
            f'width="{step - 2:.1f}" height="{height:.1f}">'
            f"<title>{escape(name)}: {count}</title></rect>"
        )
        parts.append(
            f'<text class="tick" x="{left + step / 2:.1f}" y="{HEIGHT - 6}" '
            f'text-anchor="middle">{escape(ticks[i] if ticks else name)}</text>'
        )
    return _svg(label, parts, [])


def _svg(label: str, parts: list[str], legend: Sequence[Layer]) -> Markup:
    keys = "".join(
        f'<rect class="{layer.css}" x="{LEFT + 8 + 130 * i}" y="{TOP}" width="10" height="10"/>'
        f'<text class="legend" x="{LEFT + 22 + 130 * i}" y="{TOP + 9}">{escape(layer.name)}</text>'
        for i, layer in enumerate(legend)
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f"{''.join(parts)}{keys}</svg>"
    )


def _axes(top: str, bottom: str) -> str:
    return (
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}"/>'
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{escape(top)}</text>'
        f'<text class="tick" x="{LEFT - 4}" y="{HEIGHT - BOTTOM}" text-anchor="end">'
        f"{escape(bottom)}</text>"
    )


def _frame(top: str, bottom: str, since: datetime, until: datetime) -> str:
    return (
        _axes(top, bottom)
        + f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{since:%Y-%m-%d %H:%M}Z</text>'
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{until:%Y-%m-%d %H:%M}Z</text>"
    )


def _nice(value: float) -> float:
    """The axis top: ``value`` rounded up to 1, 2 or 5 times a power of ten (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _count(value: float) -> str:
    return f"{value:,.0f}"


# -- the success matrix --------------------------------------------------------------------------


def rate_class(done: int, failed: int) -> str:
    """The colour class of a link's success rate: ``rate-0`` (below 10 %) to ``rate-10``
    (100 %), ``nodata`` without an attempt."""
    total = done + failed
    if total == 0:
        return "nodata"
    if done == total:
        return "rate-10"
    return f"rate-{min(9, int(10 * done / total))}"


# -- ingest latencies ----------------------------------------------------------------------------

EDGES = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
"""Upper bounds of the latency bins, in seconds; a last bin holds the rest."""


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    bins: list[tuple[str, int]]
    """(range, chunks in it): ``0.1s-0.2s``..."""
    ticks: list[str]
    """A short label per bin: its upper bound (``<0.2s``), the last one ``≥10m``."""
    p50: float | None
    p90: float | None
    p99: float | None
    longest: float | None


def latency_summary(latencies: Sequence[float]) -> LatencySummary:
    """Bins (``<0.1s``, ``0.1s-0.2s``... ``≥10m``) and percentiles (nearest rank)."""
    counts = [0] * (len(EDGES) + 1)
    for value in latencies:
        counts[next((i for i, edge in enumerate(EDGES) if value < edge), len(EDGES))] += 1
    names = [f"<{_edge(EDGES[0])}"]
    names += [f"{_edge(low)}-{_edge(high)}" for low, high in itertools.pairwise(EDGES)]
    names.append(f"≥{_edge(EDGES[-1])}")
    ordered = sorted(latencies)

    def rank(fraction: float) -> float | None:
        if not ordered:
            return None
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return LatencySummary(
        count=len(ordered),
        bins=list(zip(names, counts, strict=True)),
        ticks=[f"<{_edge(edge)}" for edge in EDGES] + [names[-1]],
        p50=rank(0.5),
        p90=rank(0.9),
        p99=rank(0.99),
        longest=ordered[-1] if ordered else None,
    )


def _edge(value: float) -> str:
    if value >= 60:
        return f"{value / 60:g}m"
    return f"{value:g}s"
