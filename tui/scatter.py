"""The scatter widget: a projection drawn by the engine's terminal renderer at the widget's size.

Its state is reactive: setting `projection`, `color_by`, `highlight`, `caption` or
`message` repaints it. Rendering happens in `render()`, so Textual redraws it on every
resize; the last drawing is kept per (size, state) so a repaint that changes none of them
costs nothing.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

DEFAULT_MESSAGE = "select a store (Stores pane, space/enter) to see its scatter"


class ScatterView(Widget):
    """Shows `projection` (an engine Projection) or `message` when there is none."""

    DEFAULT_CSS = """
    ScatterView {
        height: 1fr;
        width: 1fr;
    }
    """

    projection: reactive[Any] = reactive(None, always_update=True)
    color_by: reactive[str] = reactive("modality")
    highlight: reactive[str | None] = reactive(None)
    caption: reactive[str] = reactive("")
    message: reactive[str] = reactive(DEFAULT_MESSAGE)

    def __init__(self, ascii_only: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ascii_only = ascii_only
        self._cache: tuple[tuple, Text] | None = None

    def say(self, message: str) -> None:
        """Replace the drawing with a one-line message."""
        self.projection = None
        self.message = message

    def render(self) -> Text:
        if self.projection is None:
            return Text(self.message, style="dim")
        width, height = self.size.width, self.size.height
        key = (width, height, id(self.projection), self.color_by, self.highlight, self.caption)
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
            title=self.caption,
            ascii=self.ascii_only,
        )
        self._cache = (key, text)
        return text
