"""A plotext line chart as a Textual widget, drawn at the widget's size on every render.

textual-plotext wraps the plotext 5 API and pins plotext < 6, while mgap's scatter
reference (`engine/plots/terminal.py`) is built on plotext 6: this widget draws with
plotext 6's figure directly. plotext keeps one global figure, so the chart is built on
the UI thread only (in `render`). Lines are told apart by their markers, so the chart
reads the same without colour; with colour each line's markers take one of `COLOURS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

#: marker colours of the lines, in order (ignored when `plain`)
COLOURS = ("bold #e0a030", "bold #40a0e0", "bold #60c060")


@dataclass(frozen=True)
class Line:
    label: str
    xs: list[float]
    ys: list[float]
    marker: str  # one character, absent from the labels and the tick numbers


def chart_text(lines: Sequence[Line], width: int, height: int, xlabel: str, ticks: list) -> str:
    """The plotext chart of `lines`, `width` × `height` cells, without colour codes or
    legend."""
    import plotext as plt

    fig = plt.figure
    fig.clear()
    plt.terminal.limit(False, False)
    fig.plot_size(width, height)
    for line in lines:
        fig.draw(fig.signal(line.xs, line.ys, marker=line.marker).lines())
    fig.legend(False)  # it would hide the lines of a short chart: `legend` says it above
    fig.ruler(0).ticks(ticks)
    fig.label(xlabel, axis=0)
    return fig.build().string(colorless=True)


class LineChart(Widget):
    """`show(lines, xlabel, ticks)` draws; `show([])` clears."""

    DEFAULT_CSS = """
    LineChart {
        height: 12;
    }
    """

    def __init__(self, plain: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plain = plain
        self.lines: list[Line] = []
        self.xlabel = ""
        self.ticks: list = []

    def show(self, lines: Sequence[Line], xlabel: str = "", ticks: Sequence = ()) -> None:
        self.lines, self.xlabel, self.ticks = list(lines), xlabel, list(ticks)
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self.lines or width < 20 or height < 5:
            return Text()
        text = Text(chart_text(self.lines, width, height, self.xlabel, self.ticks))
        if not self.plain:
            for line, style in zip(self.lines, COLOURS, strict=False):
                text.highlight_regex(f"[{line.marker}]", style)
        return text

    def legend(self) -> Text:
        """`* L2M  + RMG  x paired cos`, each marker in its line's colour."""
        text = Text()
        for line, style in zip(self.lines, COLOURS, strict=False):
            text.append(line.marker, style="" if self.plain else style)
            text.append(f" {line.label}  ")
        return text
