"""A small SVG bar chart writer for the benchmark report: no plotting library to install.

``svg(panels)`` stacks the panels vertically; each panel is a horizontal grouped bar chart (one
group per SDK, one bar per series such as gzip off/on) with optional dashed reference lines,
such as the sink ceiling.
"""

from __future__ import annotations

import math
from html import escape
from typing import NamedTuple

WIDTH = 960
LABEL_WIDTH = 330
PLOT_WIDTH = 500
BAR = 14
GROUP_GAP = 8
TITLE = 34
AXIS = 26
LINE_LABEL = 14
COLOURS = ["#3b6ea8", "#e08a3c", "#6a9f58", "#b04a5a"]
LINE_COLOURS = ["#555555", "#999999"]


class Bar(NamedTuple):
    group: str
    series: str
    value: float


class Panel(NamedTuple):
    title: str
    bars: list[Bar]
    lines: tuple[tuple[str, float], ...] = ()


def nice_step(top: float) -> float:
    """A 1, 2 or 5 times a power of ten that cuts ``top`` into about five intervals."""
    raw = top / 5 or 1
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def text(x: float, y: float, s: str, anchor: str = "start", size: int = 12, **extra: str) -> str:
    attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in extra.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{attrs}>'
        f"{escape(s)}</text>"
    )


def panel_svg(panel: Panel, top: float) -> tuple[list[str], float]:
    """The elements of one panel drawn from ``top``, and the panel's height."""
    groups = list(dict.fromkeys(b.group for b in panel.bars))
    series = list(dict.fromkeys(b.series for b in panel.bars))
    values = {(b.group, b.series): b.value for b in panel.bars}
    largest = max([b.value for b in panel.bars] + [v for _, v in panel.lines])
    step = nice_step(largest)
    scale_top = step * max(1, math.ceil(largest / step))

    def x_of(value: float) -> float:
        return LABEL_WIDTH + PLOT_WIDTH * value / scale_top

    group_height = BAR * len(series) + GROUP_GAP
    labels_top = top + TITLE
    plot_top = labels_top + LINE_LABEL * len(panel.lines)
    plot_bottom = plot_top + group_height * len(groups)
    out = [text(10, top + 20, panel.title, size=15, font_weight="bold")]
    for i, name in enumerate(series):
        x = WIDTH - 230 + i * 110
        out.append(f'<rect x="{x}" y="{top + 9}" width="12" height="12" fill="{COLOURS[i]}"/>')
        out.append(text(x + 16, top + 20, name))
    ticks = [step * k for k in range(round(scale_top / step) + 1)]
    for tick in ticks:
        x = x_of(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{plot_bottom}" stroke="#e4e4e4"/>'
        )
        out.append(text(x, plot_bottom + 16, fmt(tick), anchor="middle", size=11, fill="#666"))
    for g, group in enumerate(groups):
        y0 = plot_top + g * group_height
        out.append(text(LABEL_WIDTH - 8, y0 + BAR * len(series) / 2 + 4, group, anchor="end"))
        for i, name in enumerate(series):
            value = values.get((group, name))
            if value is None:
                continue
            y = y0 + i * BAR
            width = max(x_of(value) - LABEL_WIDTH, 1)
            out.append(
                f'<rect x="{LABEL_WIDTH}" y="{y:.1f}" width="{width:.1f}" height="{BAR - 2}" '
                f'fill="{COLOURS[i]}"/>'
            )
            out.append(text(LABEL_WIDTH + width + 4, y + BAR - 4, fmt(value), size=10))
    for i, (name, value) in enumerate(panel.lines):
        x = x_of(value)
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        dashes = f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="5,3"'
        out.append(f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{plot_bottom}" {dashes}/>')
        y = labels_top + LINE_LABEL * i + 6  # a legend row: a dash sample, then the text
        out.append(f'<line x1="{LABEL_WIDTH}" y1="{y}" x2="{LABEL_WIDTH + 24}" y2="{y}" {dashes}/>')
        out.append(text(LABEL_WIDTH + 30, y + 4, f"{name}: {fmt(value)}", size=10, fill=colour))
    return out, plot_bottom + AXIS - top


def svg(panels: list[Panel]) -> str:
    elements: list[str] = []
    top = 0.0
    for panel in panels:
        if not panel.bars:
            continue
        drawn, height = panel_svg(panel, top)
        elements += drawn
        top += height + 10
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{top:.0f}" '
        f'viewBox="0 0 {WIDTH} {top:.0f}" font-family="sans-serif">'
    )
    background = f'<rect width="{WIDTH}" height="{top:.0f}" fill="white"/>'
    return "\n".join([head, background, *elements, "</svg>"]) + "\n"
