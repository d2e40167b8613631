"""The life cycle every per-store Results view shares (robustness, groups, attention, hyperbolic).

Each view computes one report per store, in its own thread worker, only while it is shown
(`activate`), keeps the reports it has, drops a store's report when the store is rewritten
(`forget`), and says in its status line why it shows nothing. Subclasses name their
widgets and say how to compute and how to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from mgap.tui.workers import WorkerHost


class StoreReportView(WorkerHost, Vertical):
    """A status line, a DataTable and a detail Static for the store shown in Results.

    Subclasses define `compute_for(path)` (a callable that returns the view's Computed
    message), `clear_rows()` (forget the rows the arrows move through) and `_show(report)`,
    and call `_computed(path, report)` from their Computed message handler.
    """

    #: worker groups this view runs (the first computes the report)
    GROUPS: ClassVar[tuple[str, ...]]
    #: ids of the status line and the detail panel
    STATUS_ID: ClassVar[str]
    DETAIL_ID: ClassVar[str]
    #: what the view shows, for "select a store to see its …" and "no …: reason"
    SUBJECT: ClassVar[str]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path: Path | None = None
        self.active = False
        self.reports: dict[Path, Any] = {}

    def focus_table(self) -> None:
        self.query_one(DataTable).focus()

    def set_store(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            self.cancel_workers(*self.GROUPS)
            self._say(f"select a store to see its {self.SUBJECT}")
        elif self.active:
            self._load()

    def forget(self, path: Path) -> None:
        """`path` was rewritten: its report is stale."""
        self.reports.pop(path, None)

    def activate(self, active: bool) -> None:
        self.active = active
        if active and self.path is not None:
            self._load()

    def _load(self) -> None:
        path = self.path
        if path in self.reports:
            self._show(self.reports[path])
            return
        self._say(self.computing_line(path))
        self.start_worker(self.GROUPS[0], self.compute_for(path), key=path)

    def _computed(self, path: Path, report: Any) -> None:
        """A worker's result arrived: keep it, and draw it if its store is still shown."""
        self.reports[path] = report
        if path == self.path:
            self._show(report)

    def on_worker_failed(self, message: Any) -> None:
        key = message.key[0] if isinstance(message.key, tuple) else message.key
        if key == self.path:
            self._say(f"no {self.SUBJECT}: {message.message}")

    def _say(self, line: str) -> None:
        self.clear_rows()
        self.query_one(DataTable).clear()
        self.query_one(f"#{self.DETAIL_ID}", Static).update("")
        self.query_one(f"#{self.STATUS_ID}", Static).update(Text(line, style="dim"))

    # ---- what each view says ----------------------------------------------------------------
    def computing_line(self, path: Path) -> str:
        return f"computing the {self.SUBJECT} of {path.name}…"
