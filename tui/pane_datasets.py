"""Datasets pane: known roots with their detected layout, plus the built-in synthetic set."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from mgap.tui.jobs import DatasetChoice
from mgap.tui.messages import DatasetsDetected
from mgap.tui.sources import DatasetRow, describe_dataset, synthetic_row
from mgap.tui.workers import WorkerHost


def _count(value: object, split: str) -> str:
    """Counts may be one number or one per split."""
    if isinstance(value, dict):
        value = value.get(split)
    return "-" if value is None else str(value)


class DatasetsPane(WorkerHost, Vertical):
    """Pick datasets, a split (s cycles) and a limit (l) for each."""

    WORKER_TITLE = "Datasets"
    WORKER_LABELS = {"detect": "detection"}

    BINDINGS = [
        Binding("space", "toggle", "Pick", id="datasets.toggle"),
        Binding("s", "split", "Split", id="datasets.split"),
        Binding("l", "limit", "Limit", id="datasets.limit"),
    ]

    def __init__(self, roots: list[tuple[str, Path]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.roots = roots
        self.rows: dict[str, DatasetRow] = {"synthetic": synthetic_row()}
        self.picked: list[str] = []

    def compose(self) -> ComposeResult:
        yield DataTable(id="datasets-table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="limit (images; empty = all), Enter", id="dataset-limit")
        yield Static("", id="datasets-status", classes="status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(" ", "name", "kind", "split", "limit", "images", "captions", "root")
        self.query_one("#dataset-limit", Input).display = False
        self._refill()
        if self.roots:
            self.start_worker("detect", self._detect)

    def focus_default(self) -> None:
        self.query_one(DataTable).focus()

    def _detect(self) -> None:
        """Describe each root in turn; each posts its rows as soon as they are known."""
        for name, root in self.roots:
            self.post_message(DatasetsDetected(describe_dataset(name, root)))

    def on_datasets_detected(self, message: DatasetsDetected) -> None:
        for row in message.rows:
            self.rows[row.name] = row
            if row.error:
                self.app.notify(row.error, title=f"dataset {row.name}", severity="warning")
        self._refill()

    def _cells(self, row: DatasetRow) -> tuple[str, ...]:
        mark = "✓" if row.name in self.picked else " "
        limit = "all" if row.limit is None else str(row.limit)
        root = str(row.root) if row.root else "(built in)"
        kind = row.kind if not row.error else f"? {row.error}"
        return (
            mark,
            row.name,
            kind,
            row.split or "-",
            limit,
            _count(row.n_images, row.split),
            _count(row.n_captions, row.split),
            root,
        )

    def _refill(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in self.rows.values():
            table.add_row(*self._cells(row), key=row.name)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._status()

    def _status(self) -> None:
        picked = ", ".join(
            f"{c.name}:{c.split}" + (f"[:{c.limit}]" if c.limit else "") for c in self.choices()
        )
        self.query_one("#datasets-status", Static).update(
            Text(f"picked: {picked or 'none (space picks)'} · s: split · l: limit"), layout=False
        )

    def choices(self) -> list[DatasetChoice]:
        return [
            DatasetChoice(r.name, r.kind, r.root, r.split, r.limit)
            for name in self.picked
            if (r := self.rows[name]) and not r.error
        ]

    def _current(self) -> DatasetRow | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows[str(key)]

    def action_toggle(self) -> None:
        row = self._current()
        if row is None:
            return
        if row.error:
            self.app.notify(row.error, title=f"dataset {row.name}", severity="warning")
            return
        if row.name in self.picked:
            self.picked.remove(row.name)
        else:
            self.picked.append(row.name)
        self._refill()

    def action_split(self) -> None:
        row = self._current()
        if row is not None and len(row.splits) > 1:
            row.split_index = (row.split_index + 1) % len(row.splits)
            self._refill()

    def action_limit(self) -> None:
        row = self._current()
        if row is None:
            return
        box = self.query_one("#dataset-limit", Input)
        box.value = "" if row.limit is None else str(row.limit)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#dataset-limit")
    def _limit_submitted(self, event: Input.Submitted) -> None:
        row = self._current()
        value = event.value.strip()
        if value and (not value.isdigit() or int(value) < 1):
            self.app.notify(f"limit must be a positive number, got {value!r}", severity="error")
            return
        if row is not None:
            row.limit = int(value) if value else None
        event.input.display = False
        self.focus_default()
        self._refill()

    def on_key(self, event) -> None:
        box = self.query_one("#dataset-limit", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.display = False
            self.focus_default()
