"""Results › Compare: one row per selected store (`mgap compare`), sortable, with the
gap-vs-performance scatter or, when every store has a checkpoint step, the trajectory.

The report is computed in a thread worker while the view is shown (the cached path makes a
second look instant). `s` cycles the sort column, `x`/`y` the scatter's pair, `t` switches
between the scatter and the trajectory; ↑/↓ move through the rows (the point of the row is
marked) and Enter opens that store in Results. The plots are drawn by the engine's plotext
renderer (`engine/plots/compare.py`) at the widget's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static

from mgap.engine.reports.compare import CompareReport, CompareRow
from mgap.tui.render import num
from mgap.tui.workers import WorkerHost

#: (column title, row attribute), the table's columns and the sort cycle's order
COLUMNS = (
    ("model", "model"),
    ("n", "n_images"),
    ("L2M", "l2m"),
    ("RMG", "rmg"),
    ("pair cos", "paired_cosine"),
    ("i2t R@1", "i2t_r1"),
    ("t2i R@1", "t2i_r1"),
    ("ZS top-1", "zeroshot_top1"),
    ("logit scale", "logit_scale"),
    ("step", "step"),
)
X_CHOICES = (
    "l2m",
    "rmg",
    "paired_cosine",
    "intra_image_cosine",
    "intra_text_cosine",
    "logit_scale",
    "step",
)
Y_CHOICES = ("zeroshot_top1", "i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5")
HINT = "Compare: select stores (Stores pane, space), then k in Results"


@dataclass
class CompareComputed(Message, bubble=False):
    """The comparison of `paths` (in the selection's order)."""

    paths: tuple[Path, ...]
    report: CompareReport


def compute_compare(paths: tuple[Path, ...]) -> CompareComputed:
    from mgap.engine.studies.compare import compare_report

    return CompareComputed(paths, compare_report([str(p) for p in paths]))


def sort_key(row: CompareRow, name: str) -> tuple:
    """Missing values last, whatever the column's type."""
    value = getattr(row, name)
    return (value is None, "" if value is None else value)


def complete(rows: list[CompareRow], name: str) -> bool:
    return bool(rows) and all(getattr(r, name) is not None for r in rows)


def label(row: CompareRow) -> str:
    return row.model or Path(row.store).name


class ComparePlot(Widget):
    """Whatever `draw(width, height)` returns (plotext text with colours), at this size."""

    DEFAULT_CSS = """
    ComparePlot {
        height: 1fr;
        min-height: 12;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.draw: Callable[[int, int], str] | None = None

    def show(self, draw: Callable[[int, int], str] | None) -> None:
        self.draw = draw
        self.refresh()

    def render(self) -> Text:
        if self.draw is None:
            return Text("")
        return Text.from_ansi(self.draw(self.size.width, self.size.height))


class CompareView(WorkerHost, Vertical):
    """The compared stores as a table and a plot; Enter asks Results to open a store."""

    WORKER_TITLE = "Compare"
    BINDINGS = [
        Binding("s", "sort", "Sort column", id="compare.sort"),
        Binding("x", "next_x", "Scatter x", id="compare.x"),
        Binding("y", "next_y", "Scatter y", id="compare.y"),
        Binding("t", "plot", "Scatter/trajectory", id="compare.plot"),
    ]

    class OpenStore(Message):
        """Enter on a row: show this store in Results."""

        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths: tuple[Path, ...] = ()
        self.active = False
        self.report: CompareReport | None = None
        self.rows: list[CompareRow] = []
        self.sort = -1  # index into COLUMNS; -1: the selection's order
        self.x, self.y = 0, 0
        self.trajectory = False

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-status", classes="status")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield ComparePlot(id="compare-plot")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*(title for title, _ in COLUMNS))
        self._say(HINT)

    def focus_table(self) -> None:
        self.query_one(DataTable).focus()

    # ---- what is compared -------------------------------------------------------------
    def set_paths(self, paths: list[Path]) -> None:
        if tuple(paths) != self.paths:
            self.paths, self.report = tuple(paths), None
            self._load()

    def forget(self, path: Path) -> None:
        """A store was rewritten: compare again when shown."""
        if path in self.paths:
            self.report = None
            self._load()

    def activate(self, active: bool) -> None:
        self.active = active
        self._load()

    def _load(self) -> None:
        if not self.active:
            return
        if not self.paths:
            self.cancel_workers("compare")
            self._say(HINT)
        elif self.report is None:
            paths = self.paths
            self._say(f"comparing {len(paths)} stores…")
            self.start_worker("compare", lambda: compute_compare(paths), key=paths)
        else:
            self._show()

    def on_compare_computed(self, message: CompareComputed) -> None:
        if message.paths == self.paths:
            self.report = message.report
            self.trajectory = complete(message.report.rows, "step") and len(self.paths) > 1
            self._show()

    def on_worker_failed(self, message: Any) -> None:
        if message.key == self.paths:
            self._say(f"no comparison: {message.message}")

    def _say(self, line: str) -> None:
        self.rows = []
        self.query_one(DataTable).clear()
        self.query_one(ComparePlot).show(None)
        self.query_one("#compare-status", Static).update(Text(line, style="dim"))

    # ---- the table ------------------------------------------------------------------------
    def _ordered(self) -> list[CompareRow]:
        rows = list(self.report.rows) if self.report else []
        if self.sort < 0:
            return rows
        return sorted(rows, key=lambda r: sort_key(r, COLUMNS[self.sort][1]))

    def _show(self) -> None:
        report = self.report
        if report is None:
            return
        self.rows = self._ordered()
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for i, r in enumerate(self.rows):
            cells = [label(r), str(r.n_images)]
            cells += [num(getattr(r, key), 4) for _, key in COLUMNS[2:-1]]
            cells.append("—" if r.step is None else str(r.step))
            table.add_row(*cells, key=str(i))
        if self.rows:
            table.move_cursor(row=min(max(row, 0), len(self.rows) - 1))
        self._status()
        self._plot()

    def _status(self) -> None:
        report = self.report
        shared = "own images" if report.shared_ids is None else f"{report.shared_ids} shared ids"
        by = "selection order" if self.sort < 0 else COLUMNS[self.sort][0]
        plot = "trajectory" if self.trajectory else f"{self._pair()[1]} vs {self._pair()[0]}"
        self.query_one("#compare-status", Static).update(
            Text(
                f"{report.n_stores} stores on {shared} · sort: {by} (s) · {plot} "
                "(x/y pair, t trajectory) · enter: open in Results"
            )
        )

    def action_sort(self) -> None:
        self.sort = (self.sort + 1) % len(COLUMNS)
        self._show()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._plot()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.rows):
            self.post_message(self.OpenStore(Path(self.rows[event.cursor_row].store)))

    # ---- the plot -------------------------------------------------------------------------
    def _choices(self, names: tuple[str, ...]) -> list[str]:
        return [n for n in names if complete(self.rows, n)] or [names[0]]

    def _pair(self) -> tuple[str, str]:
        xs, ys = self._choices(X_CHOICES), self._choices(Y_CHOICES)
        return xs[self.x % len(xs)], ys[self.y % len(ys)]

    def action_next_x(self) -> None:
        self.x += 1
        self.trajectory = False
        self._show()

    def action_next_y(self) -> None:
        self.y += 1
        self.trajectory = False
        self._show()

    def action_plot(self) -> None:
        if self.report is not None and complete(self.report.rows, "step"):
            self.trajectory = not self.trajectory
            self._show()
        else:
            self.app.notify("the trajectory needs every store's checkpoint step", title="Compare")

    def _plot(self) -> None:
        plot = self.query_one(ComparePlot)
        if not self.rows:
            plot.show(None)
        elif self.trajectory:
            plot.show(self._trajectory_drawing())
        else:
            plot.show(self._scatter_drawing())

    def _scatter_drawing(self) -> Callable[[int, int], str] | None:
        from mgap.engine.plots.compare import scatter_text

        x, y = self._pair()
        if not (complete(self.rows, x) and complete(self.rows, y)):
            return lambda w, h: f"{x} or {y} is missing for some store: nothing to draw"
        cursor = self.query_one(DataTable).cursor_row
        names = [("▶" if i == cursor else "") + label(r) for i, r in enumerate(self.rows)]
        xs = [float(getattr(r, x)) for r in self.rows]
        ys = [float(getattr(r, y)) for r in self.rows]
        return lambda w, h: scatter_text(xs, ys, names, x, y, size=(w, h), colorless=False)

    def _trajectory_drawing(self) -> Callable[[int, int], str]:
        from mgap.engine.plots.compare import trajectory_text
        from mgap.engine.studies.trajectory import by_step, trajectory_block

        block = trajectory_block(by_step(list(self.rows)))

        def draw(width: int, height: int) -> str:
            top = trajectory_text(block, "gap", size=(width, height // 2), colorless=False)
            low = trajectory_text(
                block, "performance", size=(width, height - height // 2), colorless=False
            )
            return f"{top}\n{low}"

        return draw
