"""Small server-rendered SVG charts: no script, no CDN, nothing for a browser to fetch or fail on."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 150, 16, 28
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]  # one per x position; NaN leaves a gap
    marked: Sequence[bool] = ()  # positions to flag (a breach): drawn as red rings


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], guide: float | None = None) -> str:
    """Lines over shared x positions (`labels`), an optional dashed horizontal guide (a floor or an SLO)."""
    finite = [v for s in series for v in s.values if math.isfinite(v)] + ([guide] if guide is not None else [])
    top = max(finite, default=1.0) * 1.1 or 1.0
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return LEFT + i * (WIDTH - LEFT - RIGHT) / (n - 1)

    def y(v: float) -> float:
        return TOP + (1 - v / top) * (HEIGHT - TOP - BOTTOM)

    parts = [_frame(title, top)]
    if guide is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(guide):.1f}" y2="{y(guide):.1f}" '
            'stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = [(x(i), y(v)) for i, v in enumerate(s.values) if math.isfinite(v)]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        for i, (v, flagged) in enumerate(zip(s.values, s.marked, strict=False)):
            if flagged and math.isfinite(v):
                parts.append(
                    f'<circle class="breach" cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="none" stroke="#d62728">'
                    f"<title>{escape(s.name)} breached in window {escape(labels[i])}</title></circle>"
                )
        parts.append(_legend(k, s.name, colour))
    if labels:
        parts.append(_axis_label(LEFT, labels[0], "start") + _axis_label(WIDTH - RIGHT, labels[-1], "end"))
    return _svg(title, parts)


def bar_chart(title: str, bins: Sequence[str], groups: Mapping[str, Sequence[float]]) -> str:
    """Side-by-side bars per bin, one colour per group (e.g. reference and current proportions)."""
    top = max((v for values in groups.values() for v in values), default=1.0) * 1.1 or 1.0
    slot = (WIDTH - LEFT - RIGHT) / max(len(bins), 1)
    bar = slot * 0.8 / max(len(groups), 1)
    parts = [_frame(title, top)]
    for k, (name, values) in enumerate(groups.items()):
        colour = PALETTE[k % len(PALETTE)]
        for i, v in enumerate(values):
            h = v / top * (HEIGHT - TOP - BOTTOM)
            parts.append(
                f'<rect x="{LEFT + i * slot + slot * 0.1 + k * bar:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{colour}"><title>{escape(name)} {escape(bins[i])}: '
                f"{v:.3f}</title></rect>"
            )
        parts.append(_legend(k, name, colour))
    if bins:
        parts.append(_axis_label(LEFT, bins[0], "start") + _axis_label(WIDTH - RIGHT, bins[-1], "end"))
    return _svg(title, parts)


def _svg(title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">{"".join(parts)}</svg>'
    )


def _frame(title: str, top: float) -> str:
    return (
        f'<text x="{LEFT}" y="11" font-size="11" font-weight="bold">{escape(title)}</text>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="9" text-anchor="end">{top:.3g}</text>'
        f'<text x="{LEFT - 4}" y="{HEIGHT - BOTTOM}" font-size="9" text-anchor="end">0</text>'
    )


def _legend(k: int, name: str, colour: str) -> str:
    y = TOP + 12 * k
    return (
        f'<rect x="{WIDTH - RIGHT + 8}" y="{y}" width="8" height="8" fill="{colour}"/>'
        f'<text x="{WIDTH - RIGHT + 20}" y="{y + 8}" font-size="9">{escape(name)}</text>'
    )


def _axis_label(x: float, text: str, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{HEIGHT - 10}" font-size="9" text-anchor="{anchor}">{escape(text)}</text>'
