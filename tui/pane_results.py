"""Results pane: gap summary, per-category table, scatter, retrieval and CKA of the selected stores.

Every analysis runs in its own exclusive thread worker (`WorkerHost`) and comes back as a
typed message (`tui/messages.py`); a result for a store or method no longer shown is kept
in the caches but not drawn. The status line's "computing …" is read from the running
workers, so a cancelled or stale computation cannot leave it stuck.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Static

from mgap.engine.reports.analysis import CkaReport, GapReport, RetrievalReport
from mgap.tui.analysis_jobs import WorkProgress
from mgap.tui.cka_view import CkaView
from mgap.tui.messages import (
    CkaComputed,
    GapComputed,
    JobProgressed,
    ProjectionComputed,
    RetrievalComputed,
    WorkerFailed,
)
from mgap.tui.render import (
    CategoryRow,
    category_detail,
    category_rows,
    job_progress_line,
    num,
    retrieval_text,
    summary_text,
)
from mgap.tui.scatter import ScatterView
from mgap.tui.view_attention import AttentionView
from mgap.tui.view_examples import ExamplesScreen
from mgap.tui.view_groups import GroupsView
from mgap.tui.view_hyperbolic import HyperbolicView
from mgap.tui.view_robustness import RobustnessView
from mgap.tui.workers import WorkerHost

METHODS = ("pca", "umap", "tsne")
#: points projected per method: PCA is cheap, UMAP and t-SNE cost seconds per thousand
MAX_POINTS = {"pca": 100_000, "umap": 5_000, "tsne": 5_000}
KIND_TAG = {"all": "", "category": "cat", "supercategory": "sup"}
#: category names longer than this are cut in the table (the detail line shows them whole)
NAME_WIDTH = 16
#: every worker group of the pane (emptying the selection cancels them all)
GROUPS = ("gap", "retrieval", "cka", "projection")


def compute_gap(path: Path, first: threading.Event) -> GapComputed | None:
    """In this thread for small stores; above `analysis_jobs.job_pairs()` pairs by a
    detached `mgap gap` job whose cached summary (O(n·d), posted first) and report are read
    back (None if cancelled). `first` is set once the first numbers are posted."""
    from textual.worker import get_current_worker

    from mgap.engine.studies.gap import gap_report
    from mgap.store import open_store
    from mgap.tui.analysis_jobs import wants_job

    store = open_store(path)
    # a one-sided store fails here at once, with the command's one-line reason
    if not (wants_job(store.n_images, store.n_texts) and store.has_images and store.has_texts):
        report = gap_report(store, by_category=bool(store.category_names), separability=False)
        return GapComputed(path, GapReport.from_json(report))
    from mgap.tui.gap_job import gap_via_job

    worker = get_current_worker()

    def post(message: Message) -> None:
        if not worker.is_cancelled:
            worker.node.post_message(message)

    def summary(doc: dict) -> None:
        post(GapComputed(path, GapReport.from_json(doc), True))
        first.set()

    report = gap_via_job(
        path,
        lambda: worker.is_cancelled,
        summary,
        lambda progress: post(JobProgressed(path, "gap", progress)),
    )
    return None if report is None else GapComputed(path, GapReport.from_json(report))


def compute_retrieval(path: Path, after: threading.Event | None = None) -> RetrievalComputed | None:
    """In this thread for small stores; above `analysis_jobs.job_pairs()` pairs by a
    detached `mgap retrieval` job whose cached ranks are read back (None if cancelled).
    Its job starts once `after` is set (the gap's first numbers), so the two jobs do not
    read the store at the same time and L2M comes first."""
    from textual.worker import get_current_worker

    from mgap.engine.studies.retrieval import interactive_sample, retrieval_report
    from mgap.store import open_store
    from mgap.tui.analysis_jobs import retrieval_via_job, wants_job

    store = open_store(path)
    report = None
    if wants_job(store.n_images, store.n_texts):
        worker = get_current_worker()
        if after is not None and not _wait(after, worker):
            return None

        def progressed(progress: WorkProgress) -> None:
            if not worker.is_cancelled:
                worker.node.post_message(JobProgressed(path, "retrieval", progress))

        report = retrieval_via_job(path, lambda: worker.is_cancelled, progressed)
        if worker.is_cancelled:
            return None
    elif store.has_images and store.has_texts:  # large CPU stores: seeded query sample
        report = retrieval_report(store, sample=interactive_sample(store))
    return RetrievalComputed(path, None if report is None else RetrievalReport.from_json(report))


def _wait(event: threading.Event, worker: Any) -> bool:
    """Wait for `event`; False if the worker was cancelled first."""
    while not event.wait(0.2):
        if worker.is_cancelled:
            return False
    return True


def compute_cka(paths: tuple[Path, ...]) -> CkaComputed:
    from mgap.engine.studies.cka import cka_report

    report = cka_report([str(p) for p in paths], kernel="linear")
    return CkaComputed(paths, CkaReport.from_json(report))


def compute_projection(
    path: Path, method: str, after: threading.Event | None = None
) -> ProjectionComputed | None:
    """On a store above `analysis_jobs.job_pairs()` pairs the fit waits for `after` (the gap's
    first numbers), so L2M comes first."""
    from mgap.engine.studies.projections import project_store
    from mgap.store import open_store
    from mgap.tui.analysis_jobs import wants_job

    store = open_store(path)
    if after is not None and wants_job(store.n_images, store.n_texts):
        from textual.worker import get_current_worker

        if not _wait(after, get_current_worker()):
            return None
    projection = project_store(store, method=method, max_points=MAX_POINTS[method])
    return ProjectionComputed(path, method, projection)


def _then_set(work: Callable[[], Message | None], done: threading.Event) -> Message | None:
    """Run `work`, then set `done` whether it returned, raised or was cancelled."""
    try:
        return work()
    finally:
        done.set()


class ResultsPane(WorkerHost, Horizontal):
    """The store shown is one of `paths` (n cycles); CKA covers all of them."""

    WORKER_TITLE = "Results"
    WORKER_LABELS = {"projection": "scatter"}

    BINDINGS = [
        Binding("m", "method", "Method", id="results.method"),
        Binding("c", "color", "Colour", id="results.color"),
        Binding("v", "view", "View", id="results.view"),
        Binding("n", "next_store", "Store", id="results.next_store"),
        Binding("g", "next_grouping", "Grouping (Groups view)", id="results.grouping"),
    ]

    def __init__(
        self, ascii_only: bool = False, group_files: list[Path] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.ascii_only = ascii_only
        self.group_files = list(group_files or [])
        self.paths: list[Path] = []
        self.current: Path | None = None
        self.method = "pca"
        self.color_by = "modality"
        self.categories: list[CategoryRow] = []
        self.projections: dict[tuple[Path, str], Any] = {}
        self.gap_reports: dict[Path, GapReport] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="results-left"):
            yield Static("no store selected", id="results-title")
            yield Static("", id="gap-summary")
            yield Static("", id="gap-progress")
            yield Static("", id="category-detail")
            yield DataTable(id="category-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="results-right"):
            yield Static("", id="results-status", classes="status")
            with ContentSwitcher(initial="scatter", id="results-switcher"):
                yield ScatterView(self.ascii_only, id="scatter")
                with VerticalScroll(id="metrics"):
                    yield Static("", id="retrieval")
                    yield CkaView(id="cka")
                yield RobustnessView(id="robustness")
                yield GroupsView(self.group_files, id="groups")
                yield AttentionView(self.ascii_only, id="attention")
                yield HyperbolicView(self.ascii_only, id="hyperbolic")

    def on_mount(self) -> None:
        self._set_columns([])
        self.workers_changed()

    def focus_default(self) -> None:
        self.query_one("#category-table", DataTable).focus()

    # ---- selection ------------------------------------------------------------------
    def set_stores(self, paths: list[Path]) -> None:
        """Show `paths` (keeps the current store when it is still selected)."""
        self.paths = list(paths)
        if not self.paths:
            self.current = None
            for view in self._views():
                view.set_store(None)
            self.cancel_workers(*GROUPS)
            self.query_one("#results-title", Static).update("no store selected", layout=False)
            self._clear_left()
            self.query_one(ScatterView).say("select a store (Stores pane) to see its scatter")
            self.query_one("#retrieval", Static).update("")
            self.query_one(CkaView).show(None)
            return
        if self.current not in self.paths:
            self._open(self.paths[-1])
        else:
            self._title()
        self._load_cka()

    def refresh_store(self, path: Path) -> None:
        """A job finished writing `path`: drop what was computed from its partial rows."""
        self.gap_reports.pop(path, None)
        for view in self._views():
            view.forget(path)
        for key in [k for k in self.projections if k[0] == path]:
            del self.projections[key]
        if path == self.current:
            self._open(path)
        if path in self.paths:
            self._load_cka()

    def _clear_left(self) -> None:
        self.query_one("#gap-summary", Static).update("", layout=False)
        self.query_one("#gap-progress", Static).display = False
        self.query_one("#category-detail", Static).update("", layout=False)
        self.query_one("#category-table", DataTable).clear()
        self.categories = []

    def _open(self, path: Path) -> None:
        self.current = path
        self._title()
        self._clear_left()
        first = threading.Event()  # the gap's first numbers are shown
        if path in self.gap_reports:
            self._show_gap(self.gap_reports[path])
            first.set()
        else:
            self.start_worker(
                "gap", lambda: _then_set(lambda: compute_gap(path, first), first), key=path
            )
        self.query_one("#retrieval", Static).update(Text("retrieval: computing…", style="dim"))
        self.start_worker("retrieval", lambda: compute_retrieval(path, first), key=path)
        self._request_projection(after=first)
        for view in self._views():
            view.set_store(path)

    def action_next_grouping(self) -> None:
        self.query_one(GroupsView).next_grouping()

    def _views(self) -> tuple[RobustnessView, GroupsView, AttentionView, HyperbolicView]:
        return (
            self.query_one(RobustnessView),
            self.query_one(GroupsView),
            self.query_one(AttentionView),
            self.query_one(HyperbolicView),
        )

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

    # ---- status and failures --------------------------------------------------------
    def workers_changed(self) -> None:
        if not self.is_mounted:
            return
        parts = [f"scatter: {self.method} · colour: {self.color_by}"]
        busy = self.busy
        if busy:
            parts.append("computing " + ", ".join(sorted(busy)) + "…")
        self.query_one("#results-status", Static).update(" · ".join(parts), layout=False)
        # the scatter's loading veil follows its worker, like the status line
        self.query_one(ScatterView).loading = "scatter" in busy

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """Say in place what could not be computed; the app notifies (the message bubbles)."""
        if message.group == "gap" and message.key == self.current:
            self.query_one("#gap-summary", Static).update(
                Text(f"no gap: {message.message}", style="dim"), layout=False
            )
        elif message.group == "retrieval" and message.key == self.current:
            self.query_one("#retrieval", Static).update(
                Text(f"no retrieval: {message.message}", style="dim")
            )
        elif message.group == "projection" and message.key == (self.current, self.method):
            self.query_one(ScatterView).say(f"no {self.method} projection: {message.message}")

    # ---- gap and categories -----------------------------------------------------------
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

    # ---- retrieval and CKA --------------------------------------------------------------
    def on_retrieval_computed(self, message: RetrievalComputed) -> None:
        if message.path == self.current:
            self.query_one("#retrieval", Static).update(retrieval_text(message.report))

    def _load_cka(self) -> None:
        paths = tuple(self.paths)
        if len(paths) < 2:
            self.cancel_workers("cka")
            self.query_one(CkaView).show(None)
            return
        self.start_worker("cka", lambda: compute_cka(paths), key=paths)

    def on_cka_computed(self, message: CkaComputed) -> None:
        if message.paths == tuple(self.paths):
            self.query_one(CkaView).show(message.report)

    # ---- scatter ---------------------------------------------------------------------
    def _request_projection(self, after: threading.Event | None = None) -> None:
        if self.current is None:
            return
        path, method = self.current, self.method
        scatter = self.query_one(ScatterView)
        if (path, method) in self.projections:
            scatter.color_by = self.color_by
            scatter.highlight = self._highlight()
            scatter.caption = f"{method.upper()} · {path.name}"
            scatter.projection = self.projections[(path, method)]
            return
        self.start_worker(
            "projection", lambda: compute_projection(path, method, after), key=(path, method)
        )

    def on_projection_computed(self, message: ProjectionComputed) -> None:
        self.projections[(message.path, message.method)] = message.projection
        if (message.path, message.method) == (self.current, self.method):
            self._request_projection()

    def action_method(self) -> None:
        self.set_method(METHODS[(METHODS.index(self.method) + 1) % len(METHODS)])

    def set_method(self, method: str) -> None:
        self.method = method
        self.workers_changed()
        self._request_projection()

    def action_color(self) -> None:
        self.color_by = "category" if self.color_by == "modality" else "modality"
        self.workers_changed()
        self.query_one(ScatterView).color_by = self.color_by

    def action_view(self) -> None:
        """Cycle scatter -> metrics -> robustness -> groups -> attention (-> hyperbolic, Lorentz
        stores only); the last views compute when shown."""
        switcher = self.query_one(ContentSwitcher)
        shown = self.gap_reports.get(self.current)
        lorentz = shown is not None and shown.hyperbolic is not None
        order = ("scatter", "metrics", "robustness", "groups", "attention") + (
            ("hyperbolic",) if lorentz else ()
        )
        current = switcher.current if switcher.current in order else "scatter"
        switcher.current = order[(order.index(current) + 1) % len(order)]
        for view in self._views():
            view.activate(view.id == switcher.current)
            if view.id == switcher.current:
                view.focus_table()
        if switcher.current in ("scatter", "metrics"):
            self.focus_default()  # the hidden view's table must not keep (and lose) the focus
