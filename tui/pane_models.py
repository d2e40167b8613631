"""Models pane: the catalog with offline availability, a filter box, multi-select with space."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from mgap.core.errors import MgapError
from mgap.engine.reports.pipeline import CatalogModel
from mgap.tui.messages import CatalogLoaded, WorkerFailed
from mgap.tui.sources import CatalogLoader, custom_model
from mgap.tui.workers import WorkerHost


class ModelsPane(WorkerHost, Vertical):
    """Pick the models to extract; the choice lives in `selected` (spec strings, in order)."""

    WORKER_TITLE = "Models"
    WORKER_LABELS = {"catalog": "catalog"}

    BINDINGS = [
        Binding("space", "toggle", "Pick", id="models.toggle"),
        Binding("slash", "filter", "Filter", id="models.filter"),
        Binding("r", "reload", "Reload", id="models.reload"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[CatalogModel] = []
        self.selected: list[str] = []
        self.catalog = CatalogLoader()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter · Enter adds a typed FAMILY:ID spec", id="model-filter")
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static("loading the model catalog…", id="models-status", classes="status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # short columns first: a long local path must not push them off an 80-column screen
        table.add_columns(" ", "offline", "sides", "model", "description")
        self.action_reload()

    def on_unmount(self) -> None:
        self.catalog.stop()

    def focus_default(self) -> None:
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.query_one("#models-status", Static).update("loading the model catalog…", layout=False)
        self.start_worker("catalog", self._load)

    def _load(self) -> CatalogLoaded | None:
        try:
            return CatalogLoaded(self.catalog.run())
        except MgapError:
            if self.catalog.stopped:  # a kill on quit is no error to report
                return None
            raise

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """Say it in the status line too; the app notifies (the message bubbles)."""
        self.query_one("#models-status", Static).update(
            Text(f"catalog unavailable: {message.message}"), layout=False
        )

    def on_catalog_loaded(self, message: CatalogLoaded) -> None:
        typed = [r for r in self.rows if r.available_offline is None]
        known = {r.spec for r in message.rows}
        self.rows = message.rows + [r for r in typed if r.spec not in known]
        self._fill()

    def _visible(self) -> list[CatalogModel]:
        needle = self.query_one("#model-filter", Input).value.strip().lower()
        if not needle:
            return self.rows
        return [r for r in self.rows if needle in f"{r.spec} {r.family} {r.description}".lower()]

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in self._visible():
            table.add_row(*self._cells(row), key=row.spec)
        self._fill_status()

    def _cells(self, row: CatalogModel) -> tuple[str, ...]:
        mark = "✓" if row.spec in self.selected else " "
        offline = {True: "yes", False: "no", None: "?"}[row.available_offline]
        return mark, offline, row.sides or "-", row.spec, row.description

    @on(Input.Changed, "#model-filter")
    def _filter_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#model-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if ":" in value and value not in {r.spec for r in self.rows}:
            try:
                row = custom_model(value)
            except MgapError as exc:
                self.app.notify(exc.one_line(), title="Models", severity="error")
                return
            self.rows.append(row)
            self._toggle(row.spec)
            event.input.value = row.spec
        self._fill()
        self.focus_default()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_one("#model-filter", Input).has_focus:
            event.stop()
            self.focus_default()

    def action_filter(self) -> None:
        self.query_one("#model-filter", Input).focus()

    def action_toggle(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self._toggle(str(key))
        row = next(r for r in self.rows if r.spec == key)
        table.update_cell(key, table.ordered_columns[0].key, self._cells(row)[0])
        self._fill_status()

    def _fill_status(self) -> None:
        offline = sum(1 for r in self.rows if r.available_offline)
        self.query_one("#models-status", Static).update(
            Text(
                f"{len(self.rows)} models, {offline} available offline · "
                f"picked: {', '.join(self.selected) or 'none (space picks)'}"
            ),
            layout=False,
        )

    def _toggle(self, spec: str) -> None:
        if spec in self.selected:
            self.selected.remove(spec)
        else:
            self.selected.append(spec)
