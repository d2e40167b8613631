"""The mgap TUI: Models, Datasets, Jobs, Stores and Results panes over detached engine jobs.

Start-up imports Textual, numpy and h5py only; models run in `mgap extract` child
processes and analysis modules are imported inside workers when first needed, so the
first frame appears without torch (tests/test_tui_imports.py checks it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from mgap.core.errors import MgapError
from mgap.tui.help import HelpScreen
from mgap.tui.jobs import FINISHED_OK, launch_extract
from mgap.tui.messages import WorkerFailed
from mgap.tui.pane_datasets import DatasetsPane
from mgap.tui.pane_jobs import JobsPane
from mgap.tui.pane_models import ModelsPane
from mgap.tui.pane_results import METHODS, ResultsPane
from mgap.tui.pane_stores import StoresPane
from mgap.tui.store_scan import store_files
from mgap.tui.view_compare import CompareView

PANES = ("models", "datasets", "jobs", "stores", "results")
#: the widget focused on start, per first pane
FIRST_FOCUS = {"results": "#category-table", "stores": "#stores-table", "models": "#models-table"}
MIN_WIDTH, MIN_HEIGHT = 80, 24
#: below this size the compact layout is used even without --compact
ROOMY_WIDTH, ROOMY_HEIGHT = 120, 32


def first_pane(store_dir: Path, select: list[Path]) -> str:
    """Results when stores were named (the demo), Stores when the directory has any, else
    Models: a user with stores wants to look at them, a new user starts by picking models."""
    if select:
        return "results"
    return "stores" if store_files(store_dir) else "models"


class _NoWaitExecutor(ThreadPoolExecutor):
    """Thread workers' executor that `q` does not wait for: a UMAP or t-SNE fit cannot be
    interrupted, and asyncio's shutdown would otherwise hold the terminal until it ends."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


class MgapApp(App[None]):
    """Five panes in tabs; state shared between them lives in the panes themselves."""

    CSS_PATH = Path(__file__).with_name("mgap.tcss")  # absolute: subclasses live elsewhere
    TITLE = "mgap"
    SUB_TITLE = "modality gap & alignment"

    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("tab", "next_pane", "Pane", id="next_pane", priority=True),
        Binding(
            "shift+tab", "prev_pane", "Previous pane", id="prev_pane", priority=True, show=False
        ),
        Binding("e", "extract", "Extract", id="extract"),
        Binding("1", "pane('models')", "Models pane", id="pane.models", show=False),
        Binding("2", "pane('datasets')", "Datasets pane", id="pane.datasets", show=False),
        Binding("3", "pane('jobs')", "Jobs pane", id="pane.jobs", show=False),
        Binding("4", "pane('stores')", "Stores pane", id="pane.stores", show=False),
        Binding("5", "pane('results')", "Results pane", id="pane.results", show=False),
    ]

    def __init__(
        self,
        store_dir: Path,
        *,
        select: list[Path] | None = None,
        roots: list[tuple[str, Path]] | None = None,
        keymap: Mapping[str, str] | None = None,
        ascii_only: bool = False,
        compact: bool = False,
        group_files: list[Path] | None = None,
    ) -> None:
        super().__init__()
        self.group_files = [Path(p) for p in group_files or []]
        self.store_dir = Path(store_dir)
        self.select = [Path(p) for p in select or []]
        self.roots = list(roots or [])
        self.keymap = dict(keymap or {})
        self.ascii_only = ascii_only
        self.force_compact = compact
        self.first_pane = first_pane(self.store_dir, self.select)
        # the screen focuses this after mount
        self.AUTO_FOCUS = FIRST_FOCUS[self.first_pane]

    def compose(self) -> ComposeResult:
        yield Header()
        initial = "stores" if self.first_pane == "results" else self.first_pane
        with TabbedContent(initial=initial, id="panes"):
            with TabPane("1 Models", id="models"):
                yield ModelsPane(id="models-pane")
            with TabPane("2 Datasets", id="datasets"):
                yield DatasetsPane(self.roots, id="datasets-pane")
            with TabPane("3 Jobs", id="jobs"):
                yield JobsPane(self.store_dir, self.ascii_only, id="jobs-pane")
            with TabPane("4 Stores", id="stores"):
                yield StoresPane(self.store_dir, self.select, id="stores-pane")
            with TabPane("5 Results", id="results"):
                yield ResultsPane(self.ascii_only, self.group_files, id="results-pane")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        asyncio.get_running_loop().set_default_executor(_NoWaitExecutor())
        # App.query_one searches the active screen only, which is the palette or the help
        # screen while those are open: keep the main screen's widgets at hand instead
        self.main = self.screen
        self.models = self.main.query_one(ModelsPane)
        self.datasets = self.main.query_one(DatasetsPane)
        self.jobs = self.main.query_one(JobsPane)
        self.stores = self.main.query_one(StoresPane)
        self.results = self.main.query_one(ResultsPane)
        self.tabs = self.main.query_one("#panes", TabbedContent)
        if self.keymap:
            self.set_keymap(self.keymap)
        if self.ascii_only:
            self.main.add_class("-ascii")
        self._layout(self.size.width, self.size.height)
        if self.select:
            self.results.set_stores(self.stores.selected)
            self.action_pane("results")

    # ---- layout ----------------------------------------------------------------------
    def on_resize(self, event: events.Resize) -> None:
        if hasattr(self, "main"):
            self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        compact = self.force_compact or width < ROOMY_WIDTH or height < ROOMY_HEIGHT
        self.main.set_class(compact, "-compact")
        self.main.query_one(Footer).compact = compact
        notice = self.main.query_one("#too-small", Static)
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        notice.display = small
        if small:
            notice.update(
                f"The terminal is {width}×{height}; mgap needs at least "
                f"{MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window (or press q to quit)."
            )

    # ---- panes -----------------------------------------------------------------------
    def _focus_pane(self) -> None:
        """Focus the active pane's main widget unless the focus is already inside the pane
        (a deferred call must not pull the focus out of a box the user just opened)."""
        active = self.tabs.active
        if not active:
            return
        pane = self.main.query_one(f"#{active}-pane")
        if self.focused is None or pane not in self.focused.ancestors_with_self:
            pane.focus_default()

    def action_pane(self, name: str) -> None:
        self.tabs.active = name
        self._focus_pane()

    def _step_pane(self, step: int) -> None:
        current = self.tabs.active or PANES[0]
        self.action_pane(PANES[(PANES.index(current) + step) % len(PANES)])

    def action_next_pane(self) -> None:
        self._step_pane(1)

    def action_prev_pane(self) -> None:
        self._step_pane(-1)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.call_after_refresh(self._focus_pane)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # pane switching belongs to the main screen, not to the help or the palette
        return not (action in ("next_pane", "prev_pane") and len(self.screen_stack) > 1)

    # ---- help and palette ------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        panes = {
            "models": ("Models", ModelsPane.BINDINGS),
            "datasets": ("Datasets", DatasetsPane.BINDINGS),
            "jobs": ("Jobs", JobsPane.BINDINGS),
            "stores": ("Stores", StoresPane.BINDINGS),
            "results": ("Results", self.results.help_bindings()),
        }
        # the pane in use first (context-sensitive help), then the global keys, then the rest
        active = self.tabs.active or PANES[0]
        sections = [panes.pop(active), ("Everywhere", self.BINDINGS), *panes.values()]
        sections.append(("Results › Compare view (k)", CompareView.BINDINGS))
        self.push_screen(HelpScreen(sections, self.keymap))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name in PANES:
            yield SystemCommand(
                f"Go to {name.title()}", f"Show the {name} pane", lambda n=name: self.action_pane(n)
            )
        yield SystemCommand(
            "Extract", "Start extraction for the picked models × datasets", self.action_extract
        )
        yield SystemCommand("Cancel job", "SIGTERM the job under the cursor", self._cancel_job)
        yield SystemCommand("Refresh stores", "Re-read the store directory", self._refresh_stores)
        yield SystemCommand("Help", "List every key binding", self.action_help)
        results = self.results
        for method in METHODS:
            yield SystemCommand(
                f"Scatter: {method.upper()}",
                f"Project the current store with {method}",
                lambda m=method: self._set_method(m),
            )
        yield SystemCommand(
            "Scatter: colour", "Colour by modality / category", results.action_color
        )
        yield SystemCommand(
            "Results: scatter/metrics", "Toggle the right panel", results.action_view
        )

    def _cancel_job(self) -> None:
        self.action_pane("jobs")
        self.jobs.action_cancel()

    def _refresh_stores(self) -> None:
        self.stores.action_refresh()

    def _set_method(self, method: str) -> None:
        self.results.set_method(method)
        self.action_pane("results")

    # ---- jobs ------------------------------------------------------------------------
    def action_extract(self) -> None:
        models = self.models.selected
        datasets = self.datasets.choices()
        if not models or not datasets:
            self.notify(
                "pick at least one model (Models pane, space) and one dataset (Datasets pane, space)",
                title="Extract",
                severity="warning",
            )
            return
        started = 0
        for dataset in datasets:
            try:
                job = launch_extract(models, dataset, self.store_dir)
            except (MgapError, OSError) as exc:
                message = exc.one_line() if isinstance(exc, MgapError) else str(exc)
                self.notify(message, title="Extract", severity="error")
                continue
            self.jobs.add_launched(job)
            started += 1
        if started:
            self.notify(
                f"started {started} extraction job(s); log next to the store", title="Extract"
            )
            self.action_pane("jobs")

    def on_worker_failed(self, message: WorkerFailed) -> None:
        """Every pane's worker failures end here, as one notification each."""
        self.notify(message.message, title=message.title, severity="error")

    def on_jobs_pane_finished(self, event: JobsPane.Finished) -> None:
        row = event.row
        severity = "information" if row.status in FINISHED_OK else "warning"
        self.notify(f"{row.name}: {row.status}", title="Job finished", severity=severity)
        self.stores.action_refresh()
        if row.key.endswith(".progress.json"):
            self.results.refresh_store(Path(row.key.removesuffix(".progress.json")).resolve())

    # ---- selections ------------------------------------------------------------------
    def on_stores_pane_selected(self, event: StoresPane.Selected) -> None:
        self.results.set_stores(event.paths)
        if event.open_results:
            self.action_pane("results")


def run_tui(
    store_dir: Path | None = None,
    *,
    select: list[Path] | None = None,
    data_roots: list[Path] | None = None,
    ascii_only: bool = False,
    compact: bool = False,
    group_files: list[Path] | None = None,
) -> None:
    """Open the TUI on `store_dir` (config / MGAP_STORE_DIR when None).

    `select` opens Results on those stores; `data_roots` adds dataset roots to the
    ones named in the config file and MGAP_DATA_ROOTS; `group_files` are `--groups` CSVs
    for the Results › Groups view.
    """
    from mgap.core.config import load_config
    from mgap.tui.sources import dataset_roots

    config = load_config()
    app = MgapApp(
        Path(store_dir) if store_dir is not None else config.store_dir,
        select=select,
        roots=dataset_roots(config.datasets, data_roots),
        keymap=config.keys,
        ascii_only=ascii_only,
        compact=compact,
        group_files=group_files,
    )
    app.run()
