"""Results › Robustness: one row per stored perturbation setting, its change from clean below.

The view computes only while it is shown (`activate`), in its own thread worker, and keeps
each store's report; ↑/↓ move through the settings and the detail line follows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from mgap.tui.render import num
from mgap.tui.store_view import StoreReportView

if TYPE_CHECKING:
    from mgap.engine.reports.studies import RobustnessReport, RobustnessSetting

#: (label, report attribute) of every metric the detail shows, two per line (fits a 40-column panel)
METRICS = (
    ("top1", "top1"),
    ("top5", "top5"),
    ("error", "error"),
    ("pair", "mean_paired_cosine"),
    ("clean", "clean_cosine"),
    ("L2M", "l2m"),
    ("RMG", "rmg"),
    ("i2t@1", "i2t_r1"),
    ("t2i@1", "t2i_r1"),
)
#: the table's columns (each with its change from clean); the detail has the rest
TABLE_KEYS = ("top1", "l2m")


@dataclass
class RobustnessComputed(Message, bubble=False):
    """The robustness report of `path`; None when the store has no perturbed sides."""

    path: Path
    report: RobustnessReport | None


def compute_robustness(path: Path) -> RobustnessComputed:
    from mgap.engine.studies.robustness import robustness_report
    from mgap.store import open_store

    store = open_store(path)
    if not store.perturbations:
        return RobustnessComputed(path, None)
    return RobustnessComputed(path, robustness_report(store))


def _delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def setting_detail(row: RobustnessSetting) -> Text:
    """Every metric of one setting with its change from clean, two per line."""
    text = Text.assemble((row.setting, "bold"), f"  {row.n_images} images\n")
    for i, (label, name) in enumerate(METRICS):
        change = _delta(getattr(row.delta, name)) if row.setting != "clean" else ""
        text.append(f"{label:>5} {num(getattr(row, name), 3):>6} {change:>6}")
        text.append("\n" if i % 2 else "  ")
    text.append(Text("pair: true pairs · clean: vs clean", style="dim"))
    return text


class RobustnessView(StoreReportView):
    """Settings table and the highlighted setting's detail, for the store shown in Results."""

    WORKER_TITLE = "Robustness"
    GROUPS = ("robustness",)
    STATUS_ID, DETAIL_ID = "robustness-status", "robustness-detail"
    SUBJECT = "robustness"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[RobustnessSetting] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="robustness-status", classes="status")
        yield DataTable(id="robustness-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="robustness-detail")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("setting", "top-1", "Δ", "L2M", "Δ")

    def compute_for(self, path: Path) -> Callable[[], RobustnessComputed]:
        return lambda: compute_robustness(path)

    def on_robustness_computed(self, message: RobustnessComputed) -> None:
        self._computed(message.path, message.report)

    def clear_rows(self) -> None:
        self.rows = []

    def _show(self, report: RobustnessReport | None) -> None:
        if report is None:
            self._say("no perturbed image sides: extract with --perturb-suite rtml")
            return
        self.rows = report.settings
        zs = "" if report.zero_shot else " · no class prompts: zero-shot empty"
        self.query_one("#robustness-status", Static).update(
            f"{len(self.rows) - 1} settings · seed {report.perturb_seed}{zs} · ↑/↓ setting"
        )
        table = self.query_one(DataTable)
        table.clear()
        for i, row in enumerate(self.rows):
            cells = [row.setting]
            for name in TABLE_KEYS:
                cells += [
                    num(getattr(row, name), 3),
                    "" if i == 0 else _delta(getattr(row.delta, name)),
                ]
            table.add_row(*cells, key=str(i))
        self._detail(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._detail(event.cursor_row)

    def _detail(self, index: int) -> None:
        if 0 <= index < len(self.rows):
            self.query_one("#robustness-detail", Static).update(setting_detail(self.rows[index]))
