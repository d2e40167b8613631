"""Scatter plots as text: points binned onto the character grid, so a redraw costs the canvas.

Public API (`mgap plot` prints it; the TUI puts it in a Static and re-renders on resize):

- `render_scatter(projection, width, height, *, color_by="modality"|"category",
  highlight=None, pairs=False, title="", legend=True, ascii=False) -> rich.text.Text`
- `scatter_grid(...)`, `plot_size(...)`: the binning and the layout behind it
- `render_scatter_plotext(projection, width, height, *, bare=False) -> str`: the plain
  reference that hands every point to plotext (benchmark and tests only: plotext is in
  the `test` extra, not a run-time dependency)
- `occupied(text) -> (rows, cols) bool`: which cells of a rendered plot hold a mark

How it draws: every point falls into one braille dot (2×4 dots per cell; 1×1 with
`ascii=True`), mapped exactly as plotext maps it (half-cell margins), so both renderers mark
the same dots. Dots are collected with a few vectorised numpy passes over the points; the
text is then built per cell, so the Python work depends on the canvas, not on n. A cell's
colour is the colour group holding the most points in it (ties: the first group), except
that a highlighted category wins every cell it touches and everything else is dimmed.
Lines joining images to captions (`pairs=True`, at most `MAX_PAIRS`, an evenly spaced
subset) are drawn beneath the points in grey. Colours are rich styles, so NO_COLOR and
terminals with fewer colours are handled by the Console that prints the Text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.text import Span, Text

from mgap.core.errors import MgapError
from mgap.engine.measures.projections import Projection
from mgap.engine.plots.palette import PAIR_COLOR, ColorGroups, color_groups

#: plotext's margins in cells at the low and high end of each axis ("center" alignment)
MARGINS = (0.5016585662, 0.501516152)
#: braille bit of the dot at (row, col) inside a cell
BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
MAX_PAIRS = 40
LINE = -2
EMPTY = -1
AXIS_NAMES = {"pca": "PC", "umap": "UMAP-", "tsne": "t-SNE-"}
MIN_COLS, MIN_ROWS = 8, 2


@dataclass
class Grid:
    """The plot area: `marks` (rows, cols) braille bits (ascii: 1 where occupied) and
    `group` (rows, cols) colour group per cell, EMPTY or LINE."""

    marks: np.ndarray
    group: np.ndarray


def limits(coords: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Data bounds per axis; a flat axis is widened by 1 each way (as plotext does)."""
    out = []
    for axis in (0, 1):
        values = coords[:, axis] if coords.size else np.zeros(1)
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        out.append((lo - 1.0, hi + 1.0) if np.isclose(lo, hi) else (lo, hi))
    return out[0], out[1]


def dot_positions(
    coords: np.ndarray,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    cols: int,
    rows: int,
    res: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(dot column, dot row from the top) of each point, plotext's arithmetic in float64."""
    low, high = MARGINS
    fx = (coords[:, 0].astype(np.float64) - xlim[0]) / (xlim[1] - xlim[0])
    fy = (coords[:, 1].astype(np.float64) - ylim[1]) / (ylim[0] - ylim[1])
    px = low + (cols - low - high) * fx
    py = low + (rows - low - high) * fy
    cx, cy = np.floor(px), np.floor(py)
    dx = cx * res[0] + np.floor((px - cx) * res[0])
    dy = cy * res[1] + np.floor((py - cy) * res[1])
    return dx.astype(np.int64), dy.astype(np.int64)


def _line_dots(ax, ay, bx, by) -> tuple[np.ndarray, np.ndarray]:
    """Every dot on the segments a->b (DDA, one dot per step along the longer axis)."""
    steps = np.maximum(np.abs(bx - ax), np.abs(by - ay)) + 1
    owner = np.repeat(np.arange(steps.size), steps)
    t = (np.arange(owner.size) - np.repeat(np.cumsum(steps) - steps, steps)) / np.maximum(
        steps[owner] - 1, 1
    )
    x = np.rint(ax[owner] + (bx - ax)[owner] * t).astype(np.int64)
    y = np.rint(ay[owner] + (by - ay)[owner] * t).astype(np.int64)
    return x, y


def pair_segments(projection: Projection, limit: int = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """(image point, caption point) index pairs among the shown points, at most `limit`."""
    images = np.flatnonzero(projection.modality == 0)
    texts = np.flatnonzero((projection.modality == 1) & (projection.image_index >= 0))
    if not images.size or not texts.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    where = np.full(int(projection.image_index.max()) + 1, -1, dtype=np.int64)
    where[projection.image_index[images]] = images
    owner = where[np.minimum(projection.image_index[texts], where.size - 1)]
    keep = owner >= 0
    a, b = owner[keep], texts[keep]
    if a.size > limit:
        pick = np.linspace(0, a.size - 1, limit).astype(np.int64)
        a, b = a[pick], b[pick]
    return a, b


def scatter_grid(
    coords: np.ndarray,
    groups: ColorGroups,
    cols: int,
    rows: int,
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    ascii: bool = False,
    segments: tuple[np.ndarray, np.ndarray] | None = None,
) -> Grid:
    """Bin the points (and optional segments) into a rows × cols grid of cells."""
    res = (1, 1) if ascii else (2, 4)
    n_groups = len(groups.names)
    n_cells = rows * cols
    dx, dy = dot_positions(coords, xlim, ylim, cols, rows, res)
    inside = (dx >= 0) & (dx < cols * res[0]) & (dy >= 0) & (dy < rows * res[1])
    dx, dy, of_point = dx[inside], dy[inside], groups.of_point[inside]
    cell = (dy // res[1]) * cols + dx // res[0]
    dot = (dy % res[1]) * res[0] + dx % res[0]
    lit = np.zeros(n_cells * res[0] * res[1], dtype=bool)
    lit[cell * (res[0] * res[1]) + dot] = True
    counts = np.bincount(cell * n_groups + of_point, minlength=n_cells * n_groups).reshape(
        n_cells, n_groups
    )
    group = np.where(counts.any(axis=1), counts.argmax(axis=1), EMPTY)
    if groups.top is not None:
        group[counts[:, groups.top] > 0] = groups.top
    if segments is not None and segments[0].size:
        a, b = segments
        pos = np.stack(dot_positions(coords, xlim, ylim, cols, rows, res), axis=1)
        lx, ly = _line_dots(pos[a, 0], pos[a, 1], pos[b, 0], pos[b, 1])
        ok = (lx >= 0) & (lx < cols * res[0]) & (ly >= 0) & (ly < rows * res[1])
        lx, ly = lx[ok], ly[ok]
        line_cell = (ly // res[1]) * cols + lx // res[0]
        lit[line_cell * (res[0] * res[1]) + (ly % res[1]) * res[0] + lx % res[0]] = True
        group[line_cell[group[line_cell] == EMPTY]] = LINE
    if ascii:
        marks = lit.astype(np.uint8)
    else:
        weights = BRAILLE_BITS.reshape(-1).astype(np.uint16)
        marks = (lit.reshape(n_cells, 8) @ weights).astype(np.uint8)
    return Grid(marks.reshape(rows, cols), group.reshape(rows, cols))


def _tick(value: float) -> str:
    return f"{value:.3g}"


def _legend_lines(groups: ColorGroups, width: int, ascii: bool) -> list[list[tuple[str, str]]]:
    """Legend entries as (text, style) pieces, wrapped to `width`."""
    lines: list[list[tuple[str, str]]] = [[]]
    used = 0
    for name, color, glyph, count in zip(
        groups.names, groups.colors, groups.glyphs, groups.counts, strict=True
    ):
        mark = glyph if ascii else "⣿"
        label = f" {name} ({count:,})  "
        if used and used + len(mark) + len(label) > width:
            lines.append([])
            used = 0
        lines[-1] += [(mark, f"bold {color}"), (label, "")]
        used += len(mark) + len(label)
    return lines


@dataclass
class Layout:
    """Where things go in a width × height figure: the left margin (y ticks), the plot area
    (cols × rows) and whether the header and legend lines fit."""

    margin: int
    cols: int
    rows: int
    header: bool
    legend: bool


def plot_size(
    projection: Projection,
    width: int,
    height: int,
    *,
    groups: ColorGroups,
    title: str = "",
    legend: bool = True,
    ascii: bool = False,
) -> Layout:
    """The layout of a width × height figure; the legend is dropped when the plot would
    otherwise get fewer than MIN_ROWS rows."""
    (xlo, xhi), (ylo, yhi) = limits(projection.coords)
    y_name = f"{AXIS_NAMES.get(projection.method, '')}2"
    margin = max(len(_tick(ylo)), len(_tick(yhi)), len(_tick((ylo + yhi) / 2)), len(y_name)) + 1
    header = bool(title) or projection.n_shown < projection.n_total
    legend_rows = len(_legend_lines(groups, width, ascii)) if legend else 0
    if height - header - 2 - legend_rows < MIN_ROWS:
        legend, legend_rows = False, 0
    cols = max(MIN_COLS, width - margin - 1)
    rows = max(MIN_ROWS, height - header - 2 - legend_rows)
    return Layout(margin, cols, rows, header, legend)


def render_scatter(
    projection: Projection,
    width: int,
    height: int,
    *,
    color_by: str = "modality",
    highlight: str | None = None,
    pairs: bool = False,
    title: str = "",
    legend: bool = True,
    ascii: bool = False,
) -> Text:
    """The whole figure (title, plot with axes, legend) as one rich Text of `height` lines."""
    groups = color_groups(
        projection.modality,
        projection.category,
        projection.category_names,
        color_by=color_by,
        highlight=highlight,
    )
    layout = plot_size(
        projection, width, height, groups=groups, title=title, legend=legend, ascii=ascii
    )
    xlim, ylim = limits(projection.coords)
    grid = scatter_grid(
        projection.coords,
        groups,
        layout.cols,
        layout.rows,
        xlim=xlim,
        ylim=ylim,
        ascii=ascii,
        segments=pair_segments(projection) if pairs else None,
    )
    return _compose(projection, grid, groups, layout, xlim, ylim, title, ascii, width)


def _cell_text(grid: Grid, groups: ColorGroups, ascii: bool) -> np.ndarray:
    """One character code per cell."""
    if not ascii:
        return np.where(grid.marks > 0, 0x2800 + grid.marks.astype(np.uint32), 0x20)
    # LINE (-2) and EMPTY (-1) index the two glyphs appended at the end
    glyphs = np.array([ord(g) for g in groups.glyphs] + [ord("."), ord(" ")], dtype=np.uint32)
    return glyphs[grid.group]


class _Lines:
    """Lines of text with their style spans, joined into one rich Text at the end."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.spans: list[Span] = []
        self.offset = 0

    def add(self, line: str, pieces: Sequence[tuple[int, int, str]] = ()) -> None:
        self.spans.extend(Span(self.offset + a, self.offset + b, s) for a, b, s in pieces if s)
        self.plain.append(line)
        self.offset += len(line) + 1

    def text(self) -> Text:
        text = Text("\n".join(self.plain), no_wrap=True, overflow="crop")
        text.spans = self.spans
        return text


def _row_pieces(lead: int, g: np.ndarray, cols: int, styles: list[str]) -> list:
    """The style spans of one plot row: the dim axis lead, then each run of one group."""
    cuts = np.flatnonzero(np.diff(g)) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [cols]])
    pieces = [(0, lead, "dim")]
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        kind = int(g[a])
        if kind >= 0:
            pieces.append((lead + a, lead + b, styles[kind]))
        elif kind == LINE:
            pieces.append((lead + a, lead + b, PAIR_COLOR))
    return pieces


def _x_ticks(xlim: tuple[float, float], axis: str, margin: int, cols: int) -> str:
    """The x-axis line under the plot: low and high tick, the axis name centred if it fits."""
    left, mid, right = _tick(xlim[0]), f"{axis}1" if axis else "", _tick(xlim[1])
    ticks = [" "] * (margin + 1 + cols)
    ticks[margin + 1 : margin + 1 + len(left)] = left
    ticks[margin + 1 + cols - len(right) : margin + 1 + cols] = right
    at = margin + 1 + (cols - len(mid)) // 2
    if mid and "".join(ticks[at - 1 : at + len(mid) + 1]).strip() == "":
        ticks[at : at + len(mid)] = mid
    return "".join(ticks)


def _add_legend(lines: _Lines, groups: ColorGroups, width: int, ascii: bool) -> None:
    for pieces in _legend_lines(groups, width, ascii):
        line, marks, at = "", [], 0
        for piece, style in pieces:
            marks.append((at, at + len(piece), style))
            line += piece
            at += len(piece)
        lines.add(line.rstrip(), [(a, min(b, len(line.rstrip())), s) for a, b, s in marks])


def _compose(
    projection: Projection,
    grid: Grid,
    groups: ColorGroups,
    layout: Layout,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    title: str,
    ascii: bool,
    width: int,
) -> Text:
    rows, cols, margin = layout.rows, layout.cols, layout.margin
    styles = [f"bold {c}" if i == groups.top else c for i, c in enumerate(groups.colors)]
    vbar, tick_bar, corner, hbar = ("|", "+", "+", "-") if ascii else ("│", "┤", "└", "─")
    axis = AXIS_NAMES.get(projection.method, "")
    ticks_at = {0: ylim[1], rows // 2: (ylim[0] + ylim[1]) / 2, rows - 1: ylim[0]}
    y_labels = {r: _tick(v) for r, v in ticks_at.items()}
    if rows >= 8 and axis:
        y_labels[rows // 4] = f"{axis}2"
    codes = _cell_text(grid, groups, ascii)
    lines = _Lines()
    if layout.header:
        header = title
        if projection.n_shown < projection.n_total:
            shown = projection.shown_label()
            header = f"{title}  ({shown})" if title else shown
        lines.add(header[:width], [(0, min(len(header), width), "bold")])
    for r in range(rows):
        bar = tick_bar if r in ticks_at else vbar
        lead = f"{y_labels.get(r, ''):>{margin - 1}} {bar}"
        row_text = codes[r].astype("<u4").tobytes().decode("utf-32-le")
        lines.add(lead + row_text, _row_pieces(len(lead), grid.group[r], cols, styles))
    lines.add(" " * margin + corner + hbar * cols, [(0, margin + 1 + cols, "dim")])
    ticks = _x_ticks(xlim, axis, margin, cols)
    lines.add(ticks.rstrip(), [(0, len(ticks), "dim")])
    if layout.legend:
        _add_legend(lines, groups, width, ascii)
    return lines.text()


def render_scatter_plotext(
    projection: Projection,
    width: int,
    height: int,
    *,
    color_by: str = "modality",
    bare: bool = False,
) -> str:
    """Every point handed to plotext as braille markers, one signal per colour group.
    `bare=True`: no axes, ticks or title, colourless, so the width × height text is the plot
    area alone (what `occupied` compares with `scatter_grid`)."""
    try:
        import plotext as plt
    except ImportError as exc:
        raise MgapError(
            "plotext is not installed: it is only the reference the tests and benchmarks "
            "compare the scatter with",
            hint="pip install -e '.[test]'",
        ) from exc

    groups = color_groups(
        projection.modality, projection.category, projection.category_names, color_by=color_by
    )
    xlim, ylim = limits(projection.coords)
    fig = plt.figure
    fig.clear()
    plt.terminal.limit(False, False)
    fig.plot_size(width, height)
    for index, name in enumerate(groups.names):
        points = projection.coords[groups.of_point == index].astype(np.float64)
        signal = fig.signal(points[:, 0].tolist(), points[:, 1].tolist(), marker="braille")
        fig.draw(signal if bare else signal.label(name))
    fig.ruler(0).lim(*xlim)
    fig.ruler(1).lim(*ylim)
    if bare:
        fig.axes(False)
        fig.ruler([0, 1]).frequency(0)
    return fig.build().string(colorless=bare)


def occupied(text: str) -> np.ndarray:
    """(rows, cols) bool: cells holding anything but a blank (space or empty braille)."""
    lines = text.split("\n")
    while lines and not lines[-1]:
        lines.pop()
    cols = max((len(line) for line in lines), default=0)
    out = np.zeros((len(lines), cols), dtype=bool)
    for r, line in enumerate(lines):
        for c, char in enumerate(line):
            out[r, c] = char not in " \u2800"
    return out
