"""The CKA widget: the matrix of the selected stores with its legend, or a hint when there is none.

Reactive like the scatter: the Results pane sets `report` (None until two or more stores
are selected and computed) and the widget redraws itself in the theme's colours.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from mgap.engine.reports.analysis import CkaReport
from mgap.tui.render import cka_legend, cka_table

HINT = "CKA: select two or more stores (Stores pane, space)"


class CkaView(Widget):
    """Shows `report` (a CKA report document) as a shaded matrix, s1..sN named below it."""

    DEFAULT_CSS = """
    CkaView {
        height: auto;
        margin-top: 1;
    }
    """

    report: reactive[CkaReport | None] = reactive(None, layout=True)
    hint: reactive[str] = reactive(HINT, layout=True)

    def show(self, report: CkaReport | None, hint: str = HINT) -> None:
        self.hint = hint
        self.report = report

    def render(self) -> Group | Text:
        if self.report is None:
            return Text(self.hint, style="dim")
        theme = self.app.current_theme
        low = theme.surface or theme.background or "#202020"
        table = cka_table(self.report, low, theme.primary)
        return Group(table, Text(), cka_legend(self.report.names))
