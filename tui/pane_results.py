"""Results pane: gap summary, per-category table, scatter, retrieval and CKA of the selected stores.

Every analysis runs in its own exclusive thread worker (`WorkerHost`) and comes back as a
typed message (`tui/messages.py`); a result for a store or method no longer shown is kept
in the caches but not drawn. The status line's "computing …" is read from the running
workers, so a cancelled or stale computation cannot leave it stuck.
"""

from __future__ import annotations

import os
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

from mgap.engine.reports.analysis import GapReport
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
from mgap.tui.pane_results_depth import DepthKeys, compute_layer_sides
from mgap.tui.pane_results_gap import GapColumn
from mgap.tui.pane_results_views import ViewSwitching
from mgap.tui.render import (
    CategoryRow,
    retrieval_text,
)
from mgap.tui.scatter import ScatterView
from mgap.tui.view_attention import AttentionView
from mgap.tui.view_compare import CompareView
from mgap.tui.view_depth import DepthView
from mgap.tui.view_groups import GroupsView
from mgap.tui.view_hyperbolic import HyperbolicView
from mgap.tui.view_robustness import RobustnessView
from mgap.tui.workers import WorkerHost

METHODS = ("pca", "umap", "tsne")
#: points projected per method: PCA is cheap, UMAP and t-SNE cost seconds per thousand
MAX_POINTS = {"pca": 100_000, "umap": 5_000, "tsne": 5_000}
#: every worker group of the pane (emptying the selection cancels them all)
GROUPS = ("gap", "retrieval", "cka", "projection", "layers")


def compute_gap(path: Path, first: threading.Event) -> GapComputed | None:
    """In this thread for small stores; above `analysis_jobs.job_pairs()` pairs by a
    detached `mgap gap` job whose cached summary (O(n·d), posted first) and report are read
    back (None if cancelled). `first` is set once the first numbers are posted."""
    from textual.worker import get_current_worker

    from mgap.engine.studies.gap import gap_report
    from mgap.store import open_store
    from mgap.tui.analysis_jobs import wants_job
    from mgap.tui.gap_job import gap_request, gap_via_job

    store = open_store(path)
    # a one-sided store fails here at once, with the command's one-line reason
    if not (wants_job(store.n_images, store.n_texts) and store.has_images and store.has_texts):
        report = gap_report(store, gap_request(bool(store.category_names)))
        return GapComputed(path, report)

    worker = get_current_worker()

    def post(message: Message) -> None:
        if not worker.is_cancelled:
            worker.node.post_message(message)

    def summary(report: GapReport) -> None:
        post(GapComputed(path, report, True))
        first.set()

    report = gap_via_job(
        path,
        lambda: worker.is_cancelled,
        summary,
        lambda progress: post(JobProgressed(path, "gap", progress)),
    )
    return None if report is None else GapComputed(path, report)


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
    return RetrievalComputed(path, report)


def _wait(event: threading.Event, worker: Any) -> bool:
    """Wait for `event`; False if the worker was cancelled first."""
    while not event.wait(0.2):
        if worker.is_cancelled:
            return False
    return True


def compute_cka(paths: tuple[Path, ...]) -> CkaComputed:
    from mgap.engine.studies.cka import cka_report

    return CkaComputed(paths, cka_report([str(p) for p in paths], kernel="linear"))


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


class ResultsPane(GapColumn, DepthKeys, ViewSwitching, WorkerHost, Horizontal):
    """The store shown is one of `paths` (n cycles); CKA covers all of them."""

    WORKER_TITLE = "Results"
    WORKER_LABELS = {"projection": "scatter"}

    BINDINGS = [
        Binding("m", "method", "Method", id="results.method"),
        Binding("c", "color", "Colour", id="results.color"),
        Binding("v", "view", "View", id="results.view"),
        Binding("n", "next_store", "Store", id="results.next_store"),
        Binding("g", "next_grouping", "Grouping (Groups view)", id="results.grouping"),
        Binding("k", "compare", "Compare stores", id="results.compare", show=False),
        # one key, two bindings: the first is shown only for a store with layers (it opens
        # the Depth view), the hidden second says in one line why a store has no Depth view
        Binding("d", "depth", "Depth", id="results.depth"),
        Binding("d", "no_depth", "Depth", id="results.depth", show=False),
        Binding("escape", "back", "Back", id="results.back"),
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
        #: sides with per-layer states per store, once read (a worker reads them)
        self.layer_sides: dict[Path, tuple[str, ...]] = {}
        self.before_depth = "scatter"

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
                yield CompareView(id="compare")
                yield DepthView(self.ascii_only or bool(os.environ.get("NO_COLOR")), id="depth")

    def on_mount(self) -> None:
        self._set_columns([])
        self.workers_changed()

    def focus_default(self) -> None:
        self.query_one("#category-table", DataTable).focus()

    # ---- selection ------------------------------------------------------------------
    def set_stores(self, paths: list[Path]) -> None:
        """Show `paths` (keeps the current store when it is still selected)."""
        self.paths = list(paths)
        self.query_one(CompareView).set_paths(self.paths)
        if not self.paths:
            self._leave_depth()
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
        self.layer_sides.pop(path, None)
        self.query_one(DepthView).forget(path)
        for view in self._views():
            view.forget(path)
        for key in [k for k in self.projections if k[0] == path]:
            del self.projections[key]
        self.query_one(CompareView).forget(path)
        if path == self.current:
            self._open(path)
        if path in self.paths:
            self._load_cka()

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
        self._leave_depth()
        if path not in self.layer_sides:
            self.start_worker("layers", lambda: compute_layer_sides(path), key=path)
        self.refresh_bindings()

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
