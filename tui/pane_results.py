"""Results pane: gap summary, per-category table, scatter, retrieval and CKA of the selected stores.

Every analysis runs in its own exclusive thread worker and reports back on the UI
thread; a result that arrives for a store or method no longer shown is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, DataTable, Static

from mgap.errors import MgapError
from mgap.tui.render import (
    CategoryRow,
    category_detail,
    category_rows,
    cka_legend,
    cka_table,
    num,
    retrieval_text,
    summary_text,
)
from mgap.tui.scatter import ScatterView

METHODS = ("pca", "umap", "tsne")
#: points projected per method: PCA is cheap, UMAP and t-SNE cost seconds per thousand
MAX_POINTS = {"pca": 100_000, "umap": 5_000, "tsne": 5_000}
KIND_TAG = {"all": "", "category": "cat", "supercategory": "sup"}


def _error_text(exc: Exception) -> str:
    return exc.one_line() if isinstance(exc, MgapError) else f"{type(exc).__name__}: {exc}"


class ResultsPane(Horizontal):
    """The store shown is one of `paths` (n cycles); CKA covers all of them."""

    BINDINGS = [
        Binding("m", "method", "Method", id="results.method"),
        Binding("c", "color", "Colour", id="results.color"),
        Binding("v", "view", "View", id="results.view"),
        Binding("n", "next_store", "Store", id="results.next_store"),
    ]

    def __init__(self, ascii_only: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ascii_only = ascii_only
        self.paths: list[Path] = []
        self.current: Path | None = None
        self.method = "pca"
        self.color_by = "modality"
        self.categories: list[CategoryRow] = []
        self.busy: set[str] = set()
        self.projections: dict[tuple[Path, str], Any] = {}
        self.gap_reports: dict[Path, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="results-left"):
            yield Static("no store selected", id="results-title")
            yield Static("", id="gap-summary")
            yield Static("", id="category-detail")
            yield DataTable(id="category-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="results-right"):
            yield Static("", id="results-status", classes="status")
            with ContentSwitcher(initial="scatter", id="results-switcher"):
                yield ScatterView(self.ascii_only, id="scatter")
                with VerticalScroll(id="metrics"):
                    yield Static("", id="retrieval")
                    yield Static("", id="cka")
                    yield Static("", id="cka-legend")

    def on_mount(self) -> None:
        self.query_one("#category-table", DataTable).add_columns("category", "", "n", "L2M", "RMG")
        self._status()

    def focus_default(self) -> None:
        self.query_one("#category-table", DataTable).focus()

    # ---- selection ------------------------------------------------------------------
    def set_stores(self, paths: list[Path]) -> None:
        """Show `paths` (keeps the current store when it is still selected)."""
        self.paths = list(paths)
        if not self.paths:
            self.current = None
            self.query_one("#results-title", Static).update("no store selected", layout=False)
            self.query_one("#gap-summary", Static).update("", layout=False)
            self.query_one("#category-detail", Static).update("", layout=False)
            self.query_one("#category-table", DataTable).clear()
            self.query_one(ScatterView).say("select a store (Stores pane) to see its scatter")
            return
        if self.current not in self.paths:
            self._open(self.paths[-1])
        else:
            self._title()
        self._load_cka(list(self.paths))

    def refresh_store(self, path: Path) -> None:
        """A job finished writing `path`: drop what was computed from its partial rows."""
        self.gap_reports.pop(path, None)
        for key in [k for k in self.projections if k[0] == path]:
            del self.projections[key]
        if path == self.current:
            self._open(path)
        if path in self.paths:
            self._load_cka(list(self.paths))

    def _open(self, path: Path) -> None:
        self.current = path
        self._title()
        self.query_one("#gap-summary", Static).update("", layout=False)
        self.query_one("#category-detail", Static).update("", layout=False)
        self.query_one("#category-table", DataTable).clear()
        if path in self.gap_reports:
            self._gap_ready(path, self.gap_reports[path])
        else:
            self._busy("gap", True)
            self._load_gap(path)
        self._busy("retrieval", True)
        self._load_retrieval(path)
        self._request_projection()

    def _title(self) -> None:
        path = self.current
        if path is None:
            return
        position = (
            f" ({self.paths.index(path) + 1}/{len(self.paths)})" if path in self.paths else ""
        )
        title = Text.assemble((path.name, "bold"), position)  # no markup: names may hold [ ]
        self.query_one("#results-title", Static).update(title, layout=False)

    def action_next_store(self) -> None:
        if len(self.paths) > 1 and self.current in self.paths:
            self._open(self.paths[(self.paths.index(self.current) + 1) % len(self.paths)])

    # ---- busy state -------------------------------------------------------------------
    def _busy(self, what: str, on: bool) -> None:
        (self.busy.add if on else self.busy.discard)(what)
        self._status()

    def _status(self) -> None:
        parts = [f"scatter: {self.method} · colour: {self.color_by}"]
        if self.busy:
            parts.append("computing " + ", ".join(sorted(self.busy)) + "…")
        self.query_one("#results-status", Static).update(" · ".join(parts), layout=False)

    def _failed(self, what: str, message: str) -> None:
        self._busy(what, False)
        self.app.notify(message, title=f"Results: {what}", severity="error")

    # ---- gap and categories -----------------------------------------------------------
    @work(thread=True, exclusive=True, group="gap", exit_on_error=False)
    def _load_gap(self, path: Path) -> None:
        from mgap.engine.analysis.gap import gap_report
        from mgap.store import open_store

        try:
            store = open_store(path)
            report = gap_report(store, by_category=bool(store.category_names), separability=False)
        except Exception as exc:  # noqa: BLE001 - shown as a notification, never a crash
            self.app.call_from_thread(self._gap_failed, path, _error_text(exc))
            return
        self.app.call_from_thread(self._gap_ready, path, report)

    def _gap_failed(self, path: Path, message: str) -> None:
        if path == self.current:
            self.query_one("#gap-summary", Static).update(
                Text(f"no gap: {message}", style="dim"), layout=False
            )
        self._failed("gap", message)

    def _gap_ready(self, path: Path, report: dict[str, Any]) -> None:
        self.gap_reports[path] = report
        if path != self.current:
            return
        self._busy("gap", False)
        self.query_one("#gap-summary", Static).update(summary_text(report), layout=False)
        self.categories = category_rows(report)
        table = self.query_one("#category-table", DataTable)
        table.clear()
        for i, row in enumerate(self.categories):
            m = row.metrics
            table.add_row(
                row.name,
                KIND_TAG.get(row.kind, row.kind),
                str(m.get("n_images", "-")),
                num(m.get("l2m"), 3),
                num(m.get("rmg"), 3),
                key=str(i),
            )
        self._show_category(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "category-table":
            return
        event.stop()
        self._show_category(event.cursor_row)

    def _show_category(self, index: int) -> None:
        if not 0 <= index < len(self.categories):
            return
        row = self.categories[index]
        self.query_one("#category-detail", Static).update(category_detail(row), layout=False)
        self.query_one(ScatterView).set_highlight(row.highlight)

    def _highlight(self) -> str | None:
        table = self.query_one("#category-table", DataTable)
        if 0 <= table.cursor_row < len(self.categories):
            return self.categories[table.cursor_row].highlight
        return None

    # ---- retrieval and CKA --------------------------------------------------------------
    @work(thread=True, exclusive=True, group="retrieval", exit_on_error=False)
    def _load_retrieval(self, path: Path) -> None:
        from mgap.engine.analysis.retrieval import retrieval_report
        from mgap.store import open_store

        try:
            store = open_store(path)
            report = retrieval_report(store) if store.has_images and store.has_texts else None
        except Exception as exc:  # noqa: BLE001 - shown as a notification, never a crash
            self.app.call_from_thread(self._failed, "retrieval", _error_text(exc))
            return
        self.app.call_from_thread(self._retrieval_ready, path, report)

    def _retrieval_ready(self, path: Path, report: dict[str, Any] | None) -> None:
        if path != self.current:
            return
        self._busy("retrieval", False)
        self.query_one("#retrieval", Static).update(retrieval_text(report))

    def _load_cka(self, paths: list[Path]) -> None:
        cka = self.query_one("#cka", Static)
        if len(paths) < 2:
            cka.update("CKA: select two or more stores (Stores pane, space)")
            self.query_one("#cka-legend", Static).update("")
            return
        self._busy("cka", True)
        self._cka_worker(paths)

    @work(thread=True, exclusive=True, group="cka", exit_on_error=False)
    def _cka_worker(self, paths: list[Path]) -> None:
        from mgap.engine.analysis.cka import cka_report

        try:
            report = cka_report([str(p) for p in paths], kernel="linear")
        except Exception as exc:  # noqa: BLE001 - shown as a notification, never a crash
            self.app.call_from_thread(self._failed, "cka", _error_text(exc))
            return
        self.app.call_from_thread(self._cka_ready, paths, report)

    def _cka_ready(self, paths: list[Path], report: dict[str, Any]) -> None:
        if paths != self.paths:
            return
        self._busy("cka", False)
        theme = self.app.current_theme
        low = theme.surface or theme.background or "#202020"
        self.query_one("#cka", Static).update(cka_table(report, low, theme.primary))
        names = list(report.get("names") or [Path(p).name for p in paths])
        self.query_one("#cka-legend", Static).update(cka_legend(names))

    # ---- scatter ---------------------------------------------------------------------
    def _request_projection(self) -> None:
        if self.current is None:
            return
        key = (self.current, self.method)
        scatter = self.query_one(ScatterView)
        if key in self.projections:
            self._busy("scatter", False)
            scatter.loading = False
            scatter.show(
                self.projections[key],
                color_by=self.color_by,
                highlight=self._highlight(),
                title=f"{self.method.upper()} · {self.current.name}",
            )
            return
        self._busy("scatter", True)
        scatter.loading = True
        self._load_projection(self.current, self.method)

    @work(thread=True, exclusive=True, group="projection", exit_on_error=False)
    def _load_projection(self, path: Path, method: str) -> None:
        from mgap.engine.analysis.projections import project_store
        from mgap.store import open_store

        try:
            projection = project_store(
                open_store(path), method=method, max_points=MAX_POINTS[method]
            )
        except Exception as exc:  # noqa: BLE001 - shown as a notification, never a crash
            self.app.call_from_thread(self._projection_failed, path, method, _error_text(exc))
            return
        self.app.call_from_thread(self._projection_ready, path, method, projection)

    def _projection_failed(self, path: Path, method: str, message: str) -> None:
        if (path, method) == (self.current, self.method):
            scatter = self.query_one(ScatterView)
            scatter.loading = False
            scatter.say(f"no {method} projection: {message}")
        self._failed("scatter", message)

    def _projection_ready(self, path: Path, method: str, projection: Any) -> None:
        self.projections[(path, method)] = projection
        if (path, method) == (self.current, self.method):
            self._request_projection()

    def action_method(self) -> None:
        self.set_method(METHODS[(METHODS.index(self.method) + 1) % len(METHODS)])

    def set_method(self, method: str) -> None:
        self.method = method
        self._status()
        self._request_projection()

    def action_color(self) -> None:
        self.color_by = "category" if self.color_by == "modality" else "modality"
        self._status()
        scatter = self.query_one(ScatterView)
        if scatter.projection is not None:
            scatter.show(scatter.projection, color_by=self.color_by, highlight=self._highlight())

    def action_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "metrics" if switcher.current == "scatter" else "scatter"
