"""Rich renderables for the Results pane, built from the engine's typed reports.

Textual-free and pure: the same report always gives the same text, which the Pilot
tests read back from the screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mgap.engine.reports.analysis import CkaReport, GapMetrics, GapReport, RetrievalReport
from mgap.output import fmt as num

if TYPE_CHECKING:
    from mgap.tui.analysis_jobs import WorkProgress

#: the first row of the category table: no filter, the whole store
ALL = "(all)"


@dataclass(frozen=True)
class CategoryRow:
    name: str
    kind: str  # "all", "category" or "supercategory"
    metrics: GapMetrics

    @property
    def highlight(self) -> str | None:
        """The category the scatter highlights (supercategories and "(all)" highlight none)."""
        return self.name if self.kind == "category" else None


def category_rows(report: GapReport) -> list[CategoryRow]:
    rows = [CategoryRow(ALL, "all", report)]
    for entry in report.by_category or []:
        rows.append(CategoryRow(entry.name, entry.kind, entry))
    return rows


def summary_text(report: GapReport) -> Text:
    """The gap summary (docs/design.md §7 metrics), four lines that fit a 36-column pane."""
    text = Text()
    text.append(f"n {report.n_images} img · {report.n_texts} txt · d {report.dim}\n")
    text.append("L2M ", style="bold")
    text.append(f"{num(report.l2m):<9}")
    text.append("L2I ", style="bold")
    text.append(f"{num(report.l2i)}\n")
    text.append("cos ", style="bold")
    text.append(f"{num(report.mean_paired_cosine):<9}")
    text.append("RMG ", style="bold")
    text.append(f"{num(report.rmg)}\n")
    text.append("intra img ", style="bold")
    text.append(f"{num(report.intra_image_cosine, 3)}  ")
    text.append("txt ", style="bold")
    text.append(num(report.intra_text_cosine, 3))
    return text


def category_detail(row: CategoryRow) -> Text:
    """The metrics of the highlighted category row (the whole store for "(all)")."""
    m = row.metrics
    text = Text()
    label = "all rows" if row.kind == "all" else f"{row.name} ({row.kind})"
    text.append("▶ ", style="bold")
    text.append(label, style="bold")
    text.append(f"  n {m.n_images}/{m.n_texts}\n")
    text.append(f"L2M {num(m.l2m)}  RMG {num(m.rmg)}  cos {num(m.mean_paired_cosine, 3)}")
    return text


def retrieval_text(report: RetrievalReport | None) -> Table | Text:
    if report is None:
        return Text("retrieval: needs both an image and a text side", style="dim")
    score = report.score
    title = "Retrieval" if score == "cosine" else f"Retrieval ({score})"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("")
    for key in ("R@1", "R@5", "R@10", "median_rank"):
        table.add_column("med" if key == "median_rank" else key, justify="right")
    for side, label in ((report.i2t, "image→text"), (report.t2i, "text→image")):
        table.add_row(
            label, *(num(v, 3) for v in (side.r1, side.r5, side.r10)), num(side.median_rank, 1)
        )
    return table


def short_names(names: Sequence[str]) -> list[str]:
    return [f"s{i + 1}" for i in range(len(names))]


def cka_table(report: CkaReport, low: str, high: str) -> Group:
    """The CKA matrix with each cell's background scaled from `low` (0) to `high` (1)."""
    from textual.color import Color

    names, matrix = report.names, report.matrix
    tags = short_names(names)
    title = Text(f"CKA ({report.kernel}, {report.estimator}, n={report.n})")
    table = Table(box=None, pad_edge=False)
    table.add_column("")
    for tag in tags:
        table.add_column(tag, justify="right")
    start, stop = Color.parse(low), Color.parse(high)
    for tag, row in zip(tags, matrix, strict=False):
        cells = []
        for value in row:
            if value is None or not math.isfinite(value):
                cells.append(Text("nan"))
                continue
            back = start.blend(stop, max(0.0, min(1.0, float(value))))
            cells.append(
                Text(f"{value:.3f}", style=f"{back.get_contrast_text(1.0).hex6} on {back.hex6}")
            )
        table.add_row(tag, *cells)
    return Group(title, table)


def cka_legend(names: Sequence[str]) -> Text:
    text = Text()
    for tag, name in zip(short_names(names), names, strict=True):
        text.append(f"{tag} ", style="bold")
        text.append(f"{name}\n")
    return text


def job_progress_line(subject: str, progress: WorkProgress, ascii_only: bool = False) -> Text:
    """`subject: step ████░░ 40% · ETA 1m05s · job pid N` for a view a job is computing."""
    from mgap.tui.jobs import format_eta, progress_bar

    parts = [f"{subject}: {progress.label}"]
    if progress.fraction is not None:
        parts[0] += " " + progress_bar(progress.fraction, 10, ascii_only)
    if progress.eta_s is not None:
        parts.append(f"ETA {format_eta(progress.eta_s)}")
    if progress.pid is not None:
        parts.append(f"job pid {progress.pid}")
    return Text(" · ".join(parts), style="dim")
