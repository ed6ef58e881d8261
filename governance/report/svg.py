"""Small inline-SVG charts for the report: a line chart, a state grid, a heatmap, a timeline, the lineage graph.

Drawn by hand, no library: the page must open offline and run no script. Every text that
reaches a chart (node ids, teams, metric names, reasons) goes through `esc`; hover text uses
SVG `<title>`, which browsers show without script.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")
MAX_LEGEND = 12  # beyond this many series a legend is unreadable; the table beside the chart names them


def esc(value: object) -> str:
    """Text or attribute value, escaped for HTML and inline SVG alike."""
    return html.escape(str(value), quote=True)


def color(i: int) -> str:
    """The i-th series colour: the palette, then evenly spread hues."""
    return PALETTE[i] if i < len(PALETTE) else f"hsl({(i * 137) % 360},60%,45%)"


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2e}"
    return f"{value:.3g}"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= count:
            step *= factor
            break
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 12))
        t += step
    return ticks


def figure(chart_id: str, title: str, svg: str, caption: str = "") -> str:
    """A chart with its title: the element a screenshot test finds by `data-chart`."""
    note = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure class="chart" id="{esc(chart_id)}" data-chart="{esc(chart_id)}">'
            f"<h3>{esc(title)}</h3>{svg}{note}</figure>")


def empty(width: int, height: int, text: str) -> str:
    return (f'<svg class="empty" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<rect width="{width}" height="{height}" fill="#f6f6f6" stroke="#bbb"/>'
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">{esc(text)}</text></svg>')


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, x_label: str, y_label: str,
               width: int = 640, height: int = 300) -> str:
    """Lines with points, integer x (rounds), axes with round ticks, a legend for a few series."""
    points = [p for s in series.values() for p in s]
    if not points:
        return empty(width, height, "no values recorded")
    left, right, top, bottom = 60, 20 + (150 if 0 < len(series) <= MAX_LEGEND else 0), 15, 45
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return round(left + (x - x_lo) / (x_hi - x_lo) * plot_w, 2)

    def sy(y: float) -> float:
        return round(top + (y_hi - y) / (y_hi - y_lo) * plot_h, 2)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{esc(y_label)} by {esc(x_label)}">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#999"/>']
    for t in _ticks(y_lo, y_hi):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(t)}" y2="{sy(t)}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4}" text-anchor="end" class="tick">{esc(_fmt(t))}</text>')
    for t in sorted({round(x) for x in xs}):
        parts.append(f'<line x1="{sx(t)}" x2="{sx(t)}" y1="{top + plot_h}" y2="{top + plot_h + 5}" stroke="#999"/>'
                     f'<text x="{sx(t)}" y="{top + plot_h + 18}" text-anchor="middle" class="tick">{t}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{esc(x_label)}</text>'
                 f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2})">{esc(y_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        c = color(i)
        ordered = sorted(pts)
        path = " ".join(f"{sx(x)},{sy(y)}" for x, y in ordered)
        parts.append(f'<g class="series"><title>{esc(name)}</title>'
                     f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in ordered:
            parts.append(f'<circle cx="{sx(x)}" cy="{sy(y)}" r="3.5" fill="{c}">'
                         f"<title>{esc(name)}, {esc(x_label)} {esc(_fmt(x))}: {esc(repr(y))}</title></circle>")
        parts.append("</g>")
        if len(series) <= MAX_LEGEND:
            ly = top + 8 + i * 18
            lx = width - right + 12
            parts.append(f'<rect x="{lx}" y="{ly - 8}" width="12" height="12" fill="{c}"/>'
                         f'<text x="{lx + 18}" y="{ly + 2}" class="legend">{esc(_clip(name, 20))}'
                         f"<title>{esc(name)}</title></text>")
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _grid_head(width: int, height: int, aria: str, column_label: str, columns: Sequence[int], left: int,
               cell_w: int) -> list[str]:
    """A grid chart's opening: the svg element, the columns' label and one heading per column."""
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{esc(aria)}">',
             f'<text x="{left}" y="12" class="tick">{esc(column_label)}</text>']
    for j, col in enumerate(columns):
        parts.append(f'<text x="{left + j * cell_w + cell_w / 2}" y="28" text-anchor="middle" class="tick">'
                     f"{esc(col)}</text>")
    return parts


def _row_label(label: str, left: int, y: float, cell_h: int) -> str:
    """A grid row's label, clipped, with the whole label on hover."""
    return (f'<text x="{left - 6}" y="{y + cell_h * 0.7}" text-anchor="end" class="tick">'
            f"{esc(_clip(label, 34))}<title>{esc(label)}</title></text>")


def _legend(states: Sequence[str], colors: Mapping[str, str], top: float) -> list[str]:
    """A chart's legend: one swatch per state drawn, three to a line."""
    parts = []
    for k, state in enumerate(states):
        x, y = 10 + (k % 3) * 170, top + (k // 3) * 22
        parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{colors[state]}" stroke="#888"/>'
                     f'<text x="{x + 20}" y="{y + 12}" class="legend">{esc(state)}</text>')
    return parts


def state_grid(rows: Sequence[str], columns: Sequence[int], cells: Mapping[tuple[str, int], tuple[str, str]],
               colors: Mapping[str, str], *, column_label: str = "round", row_labels: Mapping[str, str] | None = None,
               cell: int = 22) -> str:
    """A rows x columns grid of coloured cells; each cell's state and reason show on hover and in the legend."""
    if not rows or not columns:
        return empty(480, 80, "nothing recorded")
    label_w = min(260, 12 + 7 * max(len(_clip((row_labels or {}).get(r, r), 34)) for r in rows))
    left, top = label_w, 34
    states = [s for s in colors if any(v[0] == s for v in cells.values())]
    legend_h = 22 * ((len(states) + 2) // 3)
    width = max(left + cell * len(columns) + 20, 520)
    height = top + cell * len(rows) + 16 + legend_h
    parts = _grid_head(width, height, f"state per {column_label}", column_label, columns, left, cell)
    for i, row in enumerate(rows):
        y = top + i * cell
        parts.append(_row_label((row_labels or {}).get(row, row), left, y, cell))
        for j, col in enumerate(columns):
            state, reason = cells.get((row, col), ("", ""))
            fill = colors.get(state, "#ffffff")
            tip = f"{row}, {column_label} {col}: {state or 'nothing recorded'}" + (f" ({reason})" if reason else "")
            parts.append(f'<rect x="{left + j * cell + 1}" y="{y + 1}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="{fill}" stroke="#888" stroke-width="0.5" data-state="{esc(state)}">'
                         f"<title>{esc(tip)}</title></rect>")
    ly = top + cell * len(rows) + 14
    parts += _legend(states, colors, ly)
    parts.append("</svg>")
    return "".join(parts)


def lineage_graph(models: Sequence[tuple[str, int, str | None]], contributions: Mapping[str, Sequence[int]],
                  labels: Mapping[str, str] | None = None, max_nodes: int = 40) -> str:
    """Model versions left to right (each derived from the one before), nodes below, an edge per contribution.

    `models` is (hash, round, parent hash) in round order; `contributions` maps a node to the
    rounds whose model it contributed to. With more than `max_nodes` nodes, each model shows
    its contributor count instead of one edge per node.
    """
    if not models:
        return empty(480, 80, "no model versions recorded")
    box_w, box_h, gap = 120, 44, 40
    nodes = sorted(contributions)
    many = len(nodes) > max_nodes
    node_w = 96
    per_row = max(1, min(len(nodes), 12))
    width = max(20 + len(models) * (box_w + gap), 20 + per_row * (node_w + 8), 480)
    node_rows = 0 if many else (len(nodes) + per_row - 1) // per_row
    height = 30 + box_h + (0 if many else 90 + node_rows * 40)
    x_of = {r: 20 + i * (box_w + gap) for i, (_, r, _) in enumerate(models)}
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="lineage: model versions and the nodes whose updates made them">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    y_model = 20
    if not many:
        for k, node in enumerate(nodes):
            nx = 20 + (k % per_row) * (node_w + 8)
            ny = y_model + box_h + 90 + (k // per_row) * 40
            for r in contributions[node]:
                if r in x_of:
                    parts.append(f'<line x1="{nx + node_w / 2}" y1="{ny}" x2="{x_of[r] + box_w / 2}" '
                                 f'y2="{y_model + box_h}" stroke="#9ab" stroke-width="1">'
                                 f"<title>{esc(node)} contributed to round {r}</title></line>")
    for i, (model_hash, r, parent) in enumerate(models):
        x = x_of[r]
        if i > 0 and parent is not None:
            parts.append(f'<line x1="{x - gap}" y1="{y_model + box_h / 2}" x2="{x - 2}" y2="{y_model + box_h / 2}" '
                         'stroke="#555" stroke-width="2" marker-end="url(#arrow)"/>')
        count = sum(1 for rs in contributions.values() if r in rs)
        sub = "initial model" if r == 0 else (f"round {r}, {count} nodes" if many else f"round {r}")
        parts.append(f'<rect x="{x}" y="{y_model}" width="{box_w}" height="{box_h}" rx="6" fill="#e8f0fe" '
                     f'stroke="#3367d6" stroke-width="1.5"><title>model {esc(model_hash)}</title></rect>'
                     f'<text x="{x + box_w / 2}" y="{y_model + 18}" text-anchor="middle" class="mono">'
                     f"{esc(model_hash[:12])}</text>"
                     f'<text x="{x + box_w / 2}" y="{y_model + 35}" text-anchor="middle" class="tick">{esc(sub)}</text>')
    if not many:
        for k, node in enumerate(nodes):
            nx = 20 + (k % per_row) * (node_w + 8)
            ny = y_model + box_h + 90 + (k // per_row) * 40
            label = (labels or {}).get(node, node)
            parts.append(f'<rect x="{nx}" y="{ny}" width="{node_w}" height="26" rx="4" fill="#fef7e0" '
                         f'stroke="#b06000"><title>{esc(label)}</title></rect>'
                         f'<text x="{nx + node_w / 2}" y="{ny + 17}" text-anchor="middle" class="tick">'
                         f"{esc(_clip(node, 14))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def heatmap(rows: Sequence[str], columns: Sequence[int], cells: Mapping[tuple[str, int], tuple[str, str, str]],
            colors: Mapping[str, str], *, row_labels: Mapping[str, str] | None = None, column_label: str = "round",
            gap_after: int | None = None, cell_w: int = 48, cell_h: int = 22) -> str:
    """A rows x columns grid whose cells carry a state (their colour), a short value (their text) and a tip.

    `cells` maps (row, column) to (state, text, tip). `gap_after` leaves a blank line after that
    many rows (the federation-wide row above the nodes). The legend lists the states drawn.
    """
    if not rows or not columns:
        return empty(480, 80, "nothing recorded")
    label_w = min(260, 12 + 7 * max(len(_clip((row_labels or {}).get(r, r), 34)) for r in rows))
    left, top = label_w, 34
    states = [s for s in colors if any(v[0] == s for v in cells.values())]
    gap = cell_h // 2 if gap_after is not None and 0 < gap_after < len(rows) else 0
    legend_h = 22 * ((len(states) + 2) // 3)
    width = max(left + cell_w * len(columns) + 20, 520)
    height = top + cell_h * len(rows) + gap + 16 + legend_h
    parts = _grid_head(width, height, f"value per {column_label}", column_label, columns, left, cell_w)
    for i, row in enumerate(rows):
        y = top + i * cell_h + (gap if gap and i >= (gap_after or 0) else 0)
        parts.append(_row_label((row_labels or {}).get(row, row), left, y, cell_h))
        for j, col in enumerate(columns):
            state, value, tip = cells.get((row, col), ("", "", f"{row}, {column_label} {col}: nothing recorded"))
            fill = colors.get(state, "#ffffff")
            ink = "#fff" if _dark(fill) else "#222"
            x = left + j * cell_w
            parts.append(f'<g data-state="{esc(state)}"><title>{esc(tip)}</title>'
                         f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}" '
                         f'stroke="#888" stroke-width="0.5"/>'
                         + (f'<text x="{x + cell_w / 2}" y="{y + cell_h * 0.7}" text-anchor="middle" class="tick" '
                            f'style="fill:{ink}">{esc(_clip(value, 6))}</text>' if value else "") + "</g>")
    ly = top + cell_h * len(rows) + gap + 14
    parts += _legend(states, colors, ly)
    parts.append("</svg>")
    return "".join(parts)


def _dark(fill: str) -> bool:
    """Whether white text reads better than black on this #rrggbb fill."""
    if not (fill.startswith("#") and len(fill) == 7):
        return False
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b < 140


def timeline(events: Sequence[tuple[str, str, str, str, Sequence[str]]], colors: Mapping[str, str],
             *, step: int = 160) -> str:
    """Events left to right in ledger order, each a marker coloured by its state, and the runs each started.

    `events` holds (label above, label below, state, tip, linked runs): a linked run is a box
    under its event, joined by an arrow (a retraining run started by that trigger).
    """
    if not events:
        return empty(480, 80, "nothing recorded")
    linked = max((len(e[4]) for e in events), default=0)
    states = [s for s in colors if any(e[2] == s for e in events)]
    width = max(40 + step * len(events), 520)  # a step wide enough for a 19-digit run id's box
    axis_y = 52
    height = axis_y + 40 + (40 + 30 * linked if linked else 0) + 22 * ((len(states) + 2) // 3)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="timeline">',
             '<defs><marker id="arrow-tl" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
             f'<line x1="20" x2="{width - 20}" y1="{axis_y}" y2="{axis_y}" stroke="#999" stroke-width="2"/>']
    for i, (above, below, state, tip, runs) in enumerate(events):
        x = 20 + step * i + step / 2
        fill = colors.get(state, "#ffffff")
        parts.append(f'<g data-state="{esc(state)}"><title>{esc(tip)}</title>'
                     f'<circle cx="{x}" cy="{axis_y}" r="9" fill="{fill}" stroke="#555"/></g>'
                     f'<text x="{x}" y="{axis_y - 16}" text-anchor="middle" class="tick">{esc(_clip(above, 22))}'
                     f"<title>{esc(above)}</title></text>"
                     f'<text x="{x}" y="{axis_y + 26}" text-anchor="middle" class="tick">{esc(_clip(below, 22))}'
                     f"<title>{esc(below)}</title></text>")
        for k, run in enumerate(runs):
            by = axis_y + 52 + k * 30
            parts.append(f'<line x1="{x}" y1="{axis_y + 32}" x2="{x}" y2="{by}" stroke="#555" stroke-width="1.5" '
                         'marker-end="url(#arrow-tl)"/>'
                         f'<rect x="{x - 70}" y="{by}" width="140" height="24" rx="4" fill="#e8f0fe" '
                         f'stroke="#3367d6"><title>retraining run {esc(run)}</title></rect>'
                         f'<text x="{x}" y="{by + 16}" text-anchor="middle" class="tick">{esc(_clip(run, 20))}'
                         "</text>")
    ly = height - 22 * ((len(states) + 2) // 3) + 4
    parts += _legend(states, colors, ly)
    parts.append("</svg>")
    return "".join(parts)
