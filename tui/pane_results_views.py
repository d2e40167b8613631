"""Results pane: which view the right panel shows (a mixin of `ResultsPane`, docs/design.md §7).

`v` cycles the per-store views, `k` opens the Compare view of the selected stores, and
Enter on a Compare row opens that store's Results.
"""

from __future__ import annotations

from textual.widgets import ContentSwitcher

from mgap.tui.view_compare import CompareView


class ViewSwitching:
    """The pane keeps `current`, `paths`, `gap_reports`, `_views()`, `_open()`,
    `_leave_depth()` and `focus_default()`."""

    def action_view(self) -> None:
        """Cycle scatter -> metrics -> robustness -> groups -> attention (-> hyperbolic, Lorentz
        stores only); the last views compute when shown. From Depth: the view after the one
        Depth was opened from."""
        self._leave_depth()
        switcher = self.query_one(ContentSwitcher)
        shown = self.gap_reports.get(self.current)
        lorentz = shown is not None and shown.hyperbolic is not None
        order = ("scatter", "metrics", "robustness", "groups", "attention") + (
            ("hyperbolic",) if lorentz else ()
        )
        current = switcher.current if switcher.current in order else "scatter"
        self.show_view(order[(order.index(current) + 1) % len(order)])

    def show_view(self, name: str) -> None:
        """Show the right panel's view `name`; a view computes when shown."""
        switcher = self.query_one(ContentSwitcher)
        switcher.current = name
        compare = self.query_one(CompareView)
        compare.activate(name == "compare")
        if name == "compare":
            compare.focus_table()
        for view in self._views():
            view.activate(view.id == switcher.current)
            if view.id == switcher.current:
                view.focus_table()
        if switcher.current in ("scatter", "metrics"):
            self.focus_default()  # the hidden view's table must not keep (and lose) the focus

    def action_compare(self) -> None:
        """The Compare view of the selected stores (k again: back to the scatter)."""
        current = self.query_one(ContentSwitcher).current
        self.show_view("scatter" if current == "compare" else "compare")

    def on_compare_view_open_store(self, message: CompareView.OpenStore) -> None:
        """Enter on a Compare row: that store's Results (gap, categories, scatter)."""
        if message.path in self.paths:
            self._open(message.path)
        self.show_view("scatter")
