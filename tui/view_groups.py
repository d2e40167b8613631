"""Results › Groups: per-group gap and zero-shot accuracy with bootstrap intervals.

Groupings are the store's own: COCO category and supercategory, and any stored image
attribute (`mgap gap --groups FILE.csv` covers external CSVs). `g` (a Results binding) cycles the
grouping, ↑/↓ move through its groups; the detail shows the highlighted group with its intervals
and the grouping's worst and best ranked groups. Small groups are marked `*`, never ranked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from mgap.engine.reports.groups import GroupRow, GroupSummary
from mgap.tui.render import num
from mgap.tui.store_view import StoreReportView

#: bootstrap replicates in the TUI (the CLI's --bootstrap defaults to 1000)
TUI_BOOTSTRAP = 200
DETAIL = (
    ("L2M", "l2m"),
    ("RMG", "rmg"),
    ("pair cos", "mean_paired_cosine"),
    ("zero-shot top-1", "accuracy"),
    ("zero-shot top-5", "top5_accuracy"),
)


@dataclass
class GroupTables:
    """Per-group rows of a store merged over gap and zero-shot, their worst/best summary, and
    one line per CSV that does not cover every image."""

    groupings: list[str]
    rows: list[GroupRow]
    summary: list[GroupSummary]
    missing: list[str]
    min_n: int
    bootstrap: int
    level: float


@dataclass
class GroupsComputed(Message, bubble=False):
    """The group tables of `path`; None without groupings."""

    path: Path
    report: GroupTables | None


def compute_groups(path: Path, group_files: Sequence[Path] = ()) -> GroupsComputed:
    from mgap.engine.studies.group_report import GroupOptions, store_groups
    from mgap.engine.studies.groupings import BUILTIN, load_groupings
    from mgap.store import open_store

    store = open_store(path)
    specs = [
        *(BUILTIN if store.category_names else ()),
        *sorted(store.attributes),
        *(str(p) for p in group_files),
    ]
    if not specs:
        return GroupsComputed(path, None)
    groupings, missing = load_groupings(store, specs)
    options = GroupOptions(bootstrap=TUI_BOOTSTRAP)
    gap = store_groups(store, "gap", groupings, options, missing)
    rows = {(r.grouping, r.group): r for r in gap.rows}
    summary = list(gap.summary)
    if store.prompt_embeddings() is not None:
        zs = store_groups(store, "zeroshot", groupings, options, missing)
        for r in zs.rows:
            rows[(r.grouping, r.group)] = with_accuracy(rows[(r.grouping, r.group)], r)
        summary += zs.summary
    lines = [
        f"{m.images_without_row}/{m.n_images} images not in {Path(m.file).name}"
        for m in missing
        if m.images_without_row
    ]
    tables = GroupTables(
        groupings=[g.name for g in groupings],
        rows=list(rows.values()),
        summary=summary,
        missing=lines,
        min_n=gap.min_n,
        bootstrap=gap.bootstrap,
        level=gap.level,
    )
    return GroupsComputed(path, tables)


def with_accuracy(row: GroupRow, zeroshot: GroupRow) -> GroupRow:
    """A gap row with the zero-shot top-1/top-5 accuracy (and intervals) of the same group."""
    kept = {k: zeroshot.ci[k] for k in ("accuracy", "top5_accuracy") if k in zeroshot.ci}
    return row.with_fields(
        accuracy=zeroshot.accuracy, top5_accuracy=zeroshot.top5_accuracy, ci={**row.ci, **kept}
    )


def group_detail(row: GroupRow, summary: list[GroupSummary], min_n: int) -> Text:
    """The group's metrics with intervals, then the worst/best lines of its grouping."""
    small = f"  (fewer than {min_n} images: not ranked)" if row.small else ""
    text = Text.assemble((f"{row.grouping}: {row.group}", "bold"), f"  n={row.n}{small}\n")
    for label, key in DETAIL:
        value = row.value(key)
        if value is None:
            continue
        ci = row.ci.get(key)
        interval = f"  [{num(ci[0], 3)}, {num(ci[1], 3)}]" if ci and ci[0] is not None else ""
        text.append(f"{label:>16} {num(value, 3)}{interval}\n")
    for entry in summary:
        worst, best = entry.worst, entry.best
        if entry.grouping != row.grouping or worst is None or best is None:
            continue
        text.append(
            f"{entry.metric}: worst {worst.group} {num(worst.value, 3)}"
            f" · best {best.group} {num(best.value, 3)}"
            f" · ratio {num(entry.ratio, 3)}\n",
            style="dim",
        )
    return text


class GroupsView(StoreReportView):
    """Groups of the selected grouping and the highlighted group's detail."""

    WORKER_TITLE = "Groups"
    GROUPS = ("groups",)
    STATUS_ID, DETAIL_ID = "groups-status", "groups-detail"
    SUBJECT = "groups"

    def __init__(self, group_files: Sequence[Path] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_files = list(group_files)
        self.grouping = 0
        self.rows: list[GroupRow] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="groups-status", classes="status")
        yield DataTable(id="groups-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="groups-detail")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("group", "n", "L2M", "RMG", "top-1")

    def set_store(self, path: Path | None) -> None:
        if path != self.path:
            self.grouping = 0
        super().set_store(path)

    def computing_line(self, path: Path) -> str:
        return f"computing groups of {path.name} ({TUI_BOOTSTRAP} bootstrap replicates)…"

    def compute_for(self, path: Path) -> Callable[[], GroupsComputed]:
        files = self.group_files
        return lambda: compute_groups(path, files)

    def on_groups_computed(self, message: GroupsComputed) -> None:
        self._computed(message.path, message.report)

    def clear_rows(self) -> None:
        self.rows = []

    def next_grouping(self) -> None:
        report = self.reports.get(self.path) if self.path else None
        if report:
            self.grouping = (self.grouping + 1) % len(report.groupings)
            self._show(report)

    def _show(self, report: GroupTables | None) -> None:
        if report is None:
            self._say(
                "this store has no groupings: no categories or attributes "
                "(mgap gap --groups FILE.csv takes a CSV)"
            )
            return
        names = report.groupings
        name = names[self.grouping % len(names)]
        self.rows = [r for r in report.rows if r.grouping == name]
        self.query_one("#groups-status", Static).update(
            f"grouping {name} ({self.grouping % len(names) + 1}/{len(names)}) · g: next grouping"
            f" · ↑/↓ group · * fewer than {report.min_n} images"
            + "".join(f" · {line}" for line in report.missing)
        )
        table = self.query_one(DataTable)
        table.clear()
        for i, row in enumerate(self.rows):
            table.add_row(
                row.group[:20] + ("*" if row.small else ""),
                str(row.n),
                num(row.l2m, 3),
                num(row.rmg, 3),
                num(row.accuracy, 3),
                key=str(i),
            )
        self._detail(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._detail(event.cursor_row)

    def _detail(self, index: int) -> None:
        report = self.reports.get(self.path)
        if report and 0 <= index < len(self.rows):
            detail = group_detail(self.rows[index], report.summary, report.min_n)
            self.query_one("#groups-detail", Static).update(detail)
