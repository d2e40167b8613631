"""Results pane, left column: the gap summary, the job's progress under it, and the
per-category table whose highlighted row the scatter follows (a mixin of `ResultsPane`)."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from mgap.engine.reports.analysis import GapReport
from mgap.tui.messages import GapComputed, JobProgressed
from mgap.tui.render import (
    CategoryRow,
    category_detail,
    category_rows,
    job_progress_line,
    num,
    summary_text,
)
from mgap.tui.scatter import ScatterView
from mgap.tui.view_examples import ExamplesScreen

KIND_TAG = {"all": "", "category": "cat", "supercategory": "sup"}
#: category names longer than this are cut in the table (the detail line shows them whole)
NAME_WIDTH = 16


class GapColumn:
    """The gap summary and category table of the shown store; the pane keeps `current`,
    `categories` (the table's rows), `gap_reports` (finished reports), `ascii_only`, and the
    shown `projections` and `method` (for the examples screen's scatter)."""

    def _clear_left(self) -> None:
        self.query_one("#gap-summary", Static).update("", layout=False)
        self.query_one("#gap-progress", Static).display = False
        self.query_one("#category-detail", Static).update("", layout=False)
        self.query_one("#category-table", DataTable).clear()
        self.categories = []

    def on_gap_computed(self, message: GapComputed) -> None:
        if not message.partial:  # a partial summary is shown, not kept: reopening recomputes
            self.gap_reports[message.path] = message.report
        if message.path == self.current:
            self._show_gap(message.report)
            if not message.partial:
                self.query_one("#gap-progress", Static).display = False

    def on_job_progressed(self, message: JobProgressed) -> None:
        """A job computing a view of the shown store moved on: say how far, in that view's
        place (the gap summary's before its numbers, then the line under them)."""
        if message.path != self.current:
            return
        if message.group == "retrieval":
            line = job_progress_line("retrieval", message.progress, self.ascii_only)
            self.query_one("#retrieval", Static).update(line)
        elif not self.categories:  # no number yet: the summary's place
            line = job_progress_line("gap", message.progress, self.ascii_only)
            self.query_one("#gap-summary", Static).update(line, layout=False)
        else:
            progress = self.query_one("#gap-progress", Static)
            progress.update(job_progress_line("table", message.progress, self.ascii_only))
            progress.display = True

    def _set_columns(self, rows: list[CategoryRow]) -> None:
        """Columns as wide as this report's cells, set here rather than measured by the
        table when it next idles, so the first frame already has its final widths."""
        names = [row.name[:NAME_WIDTH] for row in rows]
        counts = [str(row.metrics.n_images) for row in rows]
        table = self.query_one("#category-table", DataTable)
        table.clear(columns=True)
        table.add_column("category", width=max(map(len, ["category", *names])))
        table.add_column("", width=3)
        table.add_column("n", width=max(map(len, ["n", *counts])))
        table.add_column("L2M", width=5)
        table.add_column("RMG", width=5)

    def _show_gap(self, report: GapReport) -> None:
        self.query_one("#gap-summary", Static).update(summary_text(report), layout=False)
        self.categories = category_rows(report)
        self._set_columns(self.categories)
        table = self.query_one("#category-table", DataTable)
        for i, row in enumerate(self.categories):
            m = row.metrics
            table.add_row(
                row.name[:NAME_WIDTH],
                KIND_TAG.get(row.kind, row.kind),
                str(m.n_images),
                num(m.l2m, 3),
                num(m.rmg, 3),
                key=str(i),
            )
        self._show_category(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "category-table":
            return
        event.stop()
        self._show_category(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a category row: its examples, worst first (tui/view_examples.py)."""
        if event.data_table.id == "category-table" and self.current is not None:
            event.stop()
            if 0 <= event.cursor_row < len(self.categories):
                name = self.categories[event.cursor_row].name
                shown = self.projections.get((self.current, self.method))
                self.app.push_screen(ExamplesScreen(self.current, name, self.ascii_only, shown))

    def _show_category(self, index: int) -> None:
        if not 0 <= index < len(self.categories):
            return
        row = self.categories[index]
        self.query_one("#category-detail", Static).update(category_detail(row), layout=False)
        self.query_one(ScatterView).highlight = row.highlight

    def _highlight(self) -> str | None:
        table = self.query_one("#category-table", DataTable)
        if 0 <= table.cursor_row < len(self.categories):
            return self.categories[table.cursor_row].highlight
        return None
