"""Stores pane: every store in the store directory, refreshed while jobs write to them."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from mgap.store.listing import StoreListing
from mgap.tui.messages import StoresScanned
from mgap.tui.store_scan import StoreScanner, most_recent_complete
from mgap.tui.workers import WorkerHost

#: seconds between re-reads of the store directory
REFRESH_S = 2.0


class StoresPane(WorkerHost, Vertical):
    """Select stores (space) for the Results pane; Enter or o opens Results on them.

    The first listing puts the cursor on the most recently written complete store.
    """

    WORKER_TITLE = "Stores"
    WORKER_LABELS = {"stores": "listing"}

    BINDINGS = [
        Binding("space", "toggle", "Select", id="stores.toggle"),
        Binding("o", "open", "Results", id="stores.open"),
        Binding("r", "refresh", "Refresh", id="stores.refresh"),
    ]

    class Selected(Message):
        """The selection changed; `open` asks the app to show the Results pane."""

        def __init__(self, paths: list[Path], open_results: bool) -> None:
            super().__init__()
            self.paths = paths
            self.open_results = open_results

    def __init__(self, store_dir: Path, selected: list[Path] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store_dir = store_dir
        self.scanner = StoreScanner(store_dir)
        self.entries: list[StoreListing] = []
        self.selected: list[Path] = [Path(p).resolve() for p in selected or []]
        self._shown: list[tuple] = []
        self._placed = False  # the cursor has been put on the most recent store once

    def compose(self) -> ComposeResult:
        yield DataTable(id="stores-table", cursor_type="row", zebra_stripes=True)
        yield Static(f"store dir: {self.store_dir}", id="stores-status", classes="status")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            " ", "store", "status", "images", "texts", "dim", "model", "dataset"
        )
        self.action_refresh()
        self.set_interval(REFRESH_S, self._scan)

    def focus_default(self) -> None:
        self.query_one(DataTable).focus()

    def action_refresh(self) -> None:
        """Re-describe every store whose file changed, however recently it was described."""
        self._scan(force=True)

    def _scan(self, force: bool = False) -> None:
        self.start_worker("stores", lambda: StoresScanned(self.scanner.scan(force)))

    def on_stores_scanned(self, message: StoresScanned) -> None:
        self._show(message.entries)

    def _cells(self, entry: StoreListing) -> tuple[str, ...]:
        mark = "✓" if Path(entry.path).resolve() in self.selected else " "
        dim = "-" if entry.dim is None else str(entry.dim)
        dataset = f"{entry.dataset}/{entry.split}" if entry.split else entry.dataset
        return (
            mark,
            entry.name,
            entry.status,
            str(entry.n_images),
            str(entry.n_texts),
            dim,
            entry.model,
            dataset,
        )

    def _show(self, entries: list[StoreListing]) -> None:
        self.entries = entries
        shown = [(e.path, *self._cells(e)) for e in entries]
        if shown == self._shown:
            return  # nothing changed: keep the cursor and skip the redraw
        self._shown = shown
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for entry, cells in zip(entries, shown, strict=True):
            table.add_row(*cells[1:], key=entry.path)
        if table.row_count:
            if not self._placed:
                cursor = most_recent_complete(entries)
                self._placed = True
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.query_one("#stores-status", Static).update(
            Text(f"{len(entries)} stores in {self.store_dir} · space: select · enter: results"),
            layout=False,
        )

    def _current(self) -> Path | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return Path(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def action_toggle(self) -> None:
        path = self._current()
        if path is None:
            return
        path = path.resolve()
        if path in self.selected:
            self.selected.remove(path)
        else:
            self.selected.append(path)
        self._shown = []
        self._show(self.entries)
        self.post_message(self.Selected(list(self.selected), open_results=False))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        path = self._current()
        if path is None:
            return
        if path.resolve() not in self.selected:
            self.action_toggle()
        self.post_message(self.Selected(list(self.selected), open_results=True))
