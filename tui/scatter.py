"""The scatter widget: a projection drawn by the engine's terminal renderer at the widget's size.

Rendering happens in `render()`, so Textual redraws it on every resize; the last
drawing is kept per (size, colouring, highlight) so a repaint that changes none of
them costs nothing.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget


class ScatterView(Widget):
    """Shows `projection` (an engine Projection) or a one-line message when there is none."""

    def __init__(self, ascii_only: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ascii_only = ascii_only
        self.projection: Any = None
        self.color_by = "modality"
        self.highlight: str | None = None
        self.title = ""
        self.message = "select a store (Stores pane, space/enter) to see its scatter"
        self._cache: tuple[tuple, Text] | None = None

    def show(
        self,
        projection: Any,
        *,
        color_by: str | None = None,
        highlight: str | None = None,
        title: str | None = None,
    ) -> None:
        self.projection = projection
        if color_by is not None:
            self.color_by = color_by
        self.highlight = highlight
        if title is not None:
            self.title = title
        self.refresh()

    def set_highlight(self, category: str | None) -> None:
        self.highlight = category
        self.refresh()

    def say(self, message: str) -> None:
        self.projection = None
        self.message = message
        self.refresh()

    def render(self) -> Text:
        if self.projection is None:
            return Text(self.message, style="dim")
        width, height = self.size.width, self.size.height
        key = (width, height, id(self.projection), self.color_by, self.highlight, self.title)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        from mgap.engine.plots.terminal import render_scatter

        text = render_scatter(
            self.projection,
            width,
            height,
            color_by=self.color_by,
            highlight=self.highlight,
            pairs=False,
            title=self.title,
            ascii=self.ascii_only,
        )
        self._cache = (key, text)
        return text
