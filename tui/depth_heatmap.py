"""The layers × layers heatmap of Results › Depth: one terminal cell per layer pair.

Each cell is three columns wide, its background scaled from the theme's surface (0) to its
primary colour (1); with `plain` (--ascii, or NO_COLOR) the value is a character of
`RAMP` instead. The arrow keys move the cursor (drawn as `[ ]`); every move posts `Moved`
so the view can say the cell's value and both layer names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from mgap.engine.reports.layer_matrix import LayerMatrixReport

#: plain shading from 0 to 1 (ASCII, one character per tenth)
RAMP = " .:-=+*#%@"
CELL = 3


def ramp_char(value: float) -> str:
    """The RAMP character of `value` clamped to [0, 1]."""
    step = int(max(0.0, min(1.0, value)) * (len(RAMP) - 1) + 0.5)
    return RAMP[step]


def heatmap_text(
    report: LayerMatrixReport,
    cursor: tuple[int, int],
    plain: bool,
    low: str = "#202020",
    high: str = "#0178d4",
) -> Text:
    """Column layer indices on top, row layer indices on the left, one cell per pair."""
    text = Text(" " * (CELL + 1))
    for column in report.columns:
        text.append(f"{column:>{CELL}}", style="dim")
    start, stop = Color.parse(low), Color.parse(high)
    for i, (row, values) in enumerate(zip(report.rows, report.matrix, strict=True)):
        text.append(f"\n{row:>{CELL}} ", style="dim")
        for j, value in enumerate(values):
            here = (i, j) == cursor
            finite = value is not None and math.isfinite(value)
            mark = ("?" if not finite else ramp_char(value)) if plain else " "
            cell = f"[{mark}]" if here else f" {mark} "
            if plain or not finite:
                text.append(cell, style="bold" if here else "")
                continue
            back = start.blend(stop, max(0.0, min(1.0, float(value))))
            style = f"{back.get_contrast_text(1.0).hex6} on {back.hex6}"
            text.append(cell, style=style + (" bold" if here else ""))
    return text


class LayerHeatmap(Widget, can_focus=True):
    """The matrix of a `LayerMatrixReport` with a cursor cell; None shows nothing."""

    DEFAULT_CSS = """
    LayerHeatmap {
        height: auto;
        width: auto;
    }
    """

    BINDINGS = [
        Binding("up", "move(-1, 0)", "Layer up", show=False),
        Binding("down", "move(1, 0)", "Layer down", show=False),
        Binding("left", "move(0, -1)", "Layer left", show=False),
        Binding("right", "move(0, 1)", "Layer right", show=False),
    ]

    report: reactive[LayerMatrixReport | None] = reactive(None, layout=True)
    cursor: reactive[tuple[int, int]] = reactive((0, 0))

    @dataclass
    class Moved(Message):
        """The cursor is on cell (`row`, `column`) of the matrix (indices, not layers)."""

        row: int
        column: int

    def __init__(self, plain: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plain = plain

    def show(self, report: LayerMatrixReport | None) -> None:
        """Draw `report` with the cursor on its best pair (the first cell without one)."""
        cursor = (0, 0)
        if report is not None and report.best is not None:
            cursor = (report.rows.index(report.best.row), report.columns.index(report.best.column))
        self.report = report
        self.cursor = cursor
        self.post_message(self.Moved(*cursor))

    def action_move(self, rows: int, columns: int) -> None:
        if self.report is None:
            return
        i = max(0, min(len(self.report.rows) - 1, self.cursor[0] + rows))
        j = max(0, min(len(self.report.columns) - 1, self.cursor[1] + columns))
        if (i, j) != self.cursor:
            self.cursor = (i, j)
            self.post_message(self.Moved(i, j))

    def render(self) -> Text:
        if self.report is None:
            return Text()
        theme = self.app.current_theme
        low = theme.surface or theme.background or "#202020"
        return heatmap_text(self.report, self.cursor, self.plain, low, theme.primary)
