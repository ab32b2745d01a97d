"""Line charts of training curves and confusion matrices, as inline SVG.

A chart plots one history quantity (`loss`, `accuracy`, `learning_rate`, ...) per epoch for
one or several runs, training solid and validation dashed; vertical lines mark the best epoch
and the epoch whose weights `weights.npz` holds. Each plotted series carries its numbers in
`data-epochs` / `data-values` (Python's `repr` of each float, as history.csv writes them), so a
test reads back exactly what was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 460.0, 260.0
LEFT, RIGHT, TOP, BOTTOM = 64.0, 16.0, 28.0, 40.0
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf")


@dataclass(frozen=True)
class Series:
    run: str
    key: str  # the history column
    epochs: tuple[int, ...]  # 1-based, as history.csv's `epoch`
    values: tuple[float, ...]
    colour: str
    dashed: bool  # validation


@dataclass(frozen=True)
class Marker:
    epoch: int  # 1-based
    label: str
    kind: str  # "best" or "weights"


def line_chart(title: str, series: list[Series], markers: list[Marker] = (),
               log_scale: bool = False) -> str:
    finite = [v for s in series for v in s.values if math.isfinite(v) and (v > 0 or not
                                                                          log_scale)]
    epochs = [e for s in series for e in s.epochs]
    if not finite or not epochs:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="lc-chart" width="{WIDTH:.0f}" '
                f'height="60"><text x="8" y="30">{escape(title)}: no values yet</text></svg>')
    scale = math.log10 if log_scale else (lambda v: v)
    low, high = scale(min(finite)), scale(max(finite))
    if high - low < 1e-12:  # a flat curve (a constant learning rate): centred, not at zero
        pad = abs(high) * 0.1 or 0.5
        low, high = low - pad, high + pad
    first, last = min(epochs), max(epochs)
    span_epochs = max(last - first, 1)

    def x_of(epoch: float) -> float:
        return LEFT + (epoch - first) / span_epochs * (WIDTH - LEFT - RIGHT)

    def y_of(value: float) -> float:
        return TOP + (high - scale(value)) / (high - low) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lc-chart" '
             f'data-title="{escape(title)}" width="{WIDTH:.0f}" height="{HEIGHT:.0f}" '
             f'viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}">',
             f'<text class="lc-title" x="{LEFT}" y="18">{escape(title)}</text>',
             f'<rect class="lc-plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
             f'height="{HEIGHT - TOP - BOTTOM}"/>']
    for i in range(5):  # value ticks
        level = low + (high - low) * i / 4
        value = 10 ** level if log_scale else level
        y = y_of(value)
        parts.append(f'<line class="lc-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="lc-tick" x="{LEFT - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{value:.3g}</text>')
    for epoch in _epoch_ticks(first, last):
        parts.append(f'<text class="lc-tick" x="{x_of(epoch):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{epoch}</text>')
    parts.append(f'<text class="lc-tick" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" '
                 f'y="{HEIGHT - 6}" text-anchor="middle">epoch</text>')
    for marker in markers:
        x = x_of(marker.epoch)
        parts.append(f'<line class="lc-marker {marker.kind}" data-epoch="{marker.epoch}" '
                     f'x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}">'
                     f"<title>{escape(marker.label)}</title></line>")
    for s in series:
        points = " ".join(f"{x_of(e):.1f},{y_of(v):.1f}" for e, v in zip(s.epochs, s.values,
                                                                         strict=True)
                          if math.isfinite(v) and (v > 0 or not log_scale))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<polyline class="lc-series" data-run="{escape(s.run)}" '
                     f'data-key="{escape(s.key)}" '
                     f'data-epochs="{" ".join(map(str, s.epochs))}" '
                     f'data-values="{" ".join(repr(float(v)) for v in s.values)}" '
                     f'points="{points}" stroke="{s.colour}"{dash}>'
                     f"<title>{escape(s.run)}: {escape(s.key)}</title></polyline>")
        if len(s.epochs) == 1 and points:
            x, y = points.split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{s.colour}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def _epoch_ticks(first: int, last: int) -> list[int]:
    step = max(1, math.ceil((last - first + 1) / 10))
    return list(range(first, last + 1, step))


def confusion_svg(matrix, labels: list[str], title: str) -> str:
    """A confusion matrix (rows: true class, columns: predicted), cells shaded by row share."""
    n = len(labels)
    cell = max(22.0, min(40.0, 400.0 / max(n, 1)))
    left, top = 70.0, 52.0
    size = left + n * cell + 16
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lc-confusion" '
             f'data-title="{escape(title)}" width="{size:.0f}" height="{top + n * cell + 16:.0f}">',
             f'<text class="lc-title" x="4" y="16">{escape(title)}</text>',
             f'<text class="lc-tick" x="{left}" y="{top - 22}">predicted →</text>',
             f'<text class="lc-tick" x="4" y="{top + 14}">true ↓</text>']
    for j, label in enumerate(labels):
        parts.append(f'<text class="lc-tick" x="{left + (j + 0.5) * cell:.1f}" '
                     f'y="{top - 6}" text-anchor="middle">{escape(label)}</text>')
    for i, label in enumerate(labels):
        total = int(sum(matrix[i])) or 1
        y = top + i * cell
        parts.append(f'<text class="lc-tick" x="{left - 6}" y="{y + cell / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(label)}</text>')
        for j in range(n):
            count = int(matrix[i][j])
            share = count / total
            shade = f"rgba(31, 119, 180, {share:.3f})"
            ink = "#fff" if share > 0.55 else "#222"
            x = left + j * cell
            parts.append(f'<rect class="lc-cell" data-true="{i}" data-predicted="{j}" '
                         f'data-count="{count}" x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" '
                         f'height="{cell:.1f}" fill="{shade}"/>'
                         f'<text class="lc-count" x="{x + cell / 2:.1f}" '
                         f'y="{y + cell / 2 + 4:.1f}" text-anchor="middle" fill="{ink}">'
                         f"{count}</text>")
    parts.append("</svg>")
    return "\n".join(parts)
