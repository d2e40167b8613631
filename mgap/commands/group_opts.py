"""`--groups` for the report commands (gap, retrieval, zeroshot, robustness): options,
loading the groupings, and the per-group tables. Kept apart from each command module so
that the four commands share one spelling and one printer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from mgap.core.errors import UsageError
from mgap.output import fmt, note, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.groups import GroupRow, GroupsReport, GroupSummary

GROUPS_OPT = typer.Option(
    None,
    "--groups",
    help="Per-group results: a CSV keyed by image id or file name (each other column is a "
    "grouping), category, supercategory, or a stored image attribute. Repeatable.",
)
MIN_GROUP_OPT = typer.Option(
    20, "--min-group", help="Groups with fewer images are reported but not ranked."
)
#: the most bootstrap replicates `--bootstrap` takes: 100,000 already pin a 95 % interval's
#: ends to well under 1 % of its width; more only cost minutes
MAX_BOOTSTRAP = 100_000
BOOTSTRAP_OPT = typer.Option(
    1000,
    "--bootstrap",
    help=f"Bootstrap replicates for the per-group 95% intervals (0: none; at most {MAX_BOOTSTRAP:,}).",
)


def load_groups(store: Any, specs: list[str] | None, min_group: int, bootstrap: int):
    """(groupings, options, missing-row reports) or None without --groups; one stderr line
    per CSV that does not cover every image."""
    if not specs:
        return None
    if min_group < 1:
        raise UsageError(f"--min-group must be at least 1, got {min_group}")
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise UsageError(
            f"--bootstrap must be between 0 and {MAX_BOOTSTRAP:,}, got {bootstrap:,}",
            hint="1000 replicates (the default) give a stable 95% interval",
        )
    from mgap.engine.studies.group_report import GroupOptions
    from mgap.engine.studies.groupings import load_groupings

    groupings, missing = load_groupings(store, specs)
    for report in missing:
        if report.images_without_row or report.rows_without_image or report.duplicate_rows:
            note(f"mgap: {report.line()}")
    return groupings, GroupOptions(min_n=min_group, bootstrap=bootstrap), missing


def _cell(row: GroupRow, key: str, digits: int) -> str:
    value = row.value(key)
    ci = row.ci.get(key)
    text = fmt(value, digits)
    if ci and ci[0] is not None and value is not None:
        text += f"\n[{fmt(ci[0], digits)},{fmt(ci[1], digits)}]"
    return text


def print_groups(
    groups: GroupsReport, columns: list[tuple[str, str]], digits: int = 3, by_setting: bool = False
) -> None:
    """One table per grouping (and setting): group, n, each metric with its interval; small
    groups marked; then the worst/best lines of the summary."""
    from rich import box
    from rich.table import Table

    keys = []
    for row in groups.rows:
        key = (row.grouping, row.setting if by_setting else None)
        if key not in keys:
            keys.append(key)
    for grouping, setting in keys:
        title = f"Groups: {grouping}" + (f" ({setting})" if setting else "")
        out = Table(
            title=title,
            title_justify="left",
            caption=f"[{groups.level:.0%} bootstrap interval, {groups.bootstrap} replicates]; "
            f"* = fewer than {groups.min_n} images, not ranked",
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            header_style="bold",
        )
        out.add_column("group", no_wrap=True, max_width=20)
        out.add_column("n", justify="right", no_wrap=True, min_width=3)
        for label, _ in columns:
            out.add_column(label, justify="right", no_wrap=True)
        for row in groups.rows:
            if row.grouping != grouping or (by_setting and row.setting != setting):
                continue
            name = row.group[:18] + ("*" if row.small else "")
            out.add_row(name, str(row.n), *(_cell(row, key, digits) for _, key in columns))
        stdout.print(out)
        for entry in groups.summary:
            if entry.grouping != grouping or (by_setting and entry.setting != setting):
                continue
            _summary_line(entry, digits)


def _summary_line(entry: GroupSummary, digits: int) -> None:
    worst, best = entry.worst, entry.best
    if worst is None or best is None:
        stdout.print(f"  {entry.metric}: no group has enough images to rank")
        return
    stdout.print(
        f"  {entry.metric}: worst {worst.group[:16]} {fmt(worst.value, digits)} · best "
        f"{best.group[:16]} {fmt(best.value, digits)} · diff "
        f"{fmt(entry.difference, digits)} · ratio {fmt(entry.ratio, digits)}",
        highlight=False,
    )
