"""`mgap robustness`: per perturbation setting, the change of zero-shot, gap and retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.group_opts import (
    BOOTSTRAP_OPT,
    GROUPS_OPT,
    MIN_GROUP_OPT,
    load_groups,
    print_groups,
)
from mgap.commands.report_common import (
    CAPTIONS_OPT,
    CHECK_OPT,
    JSON_OPT,
    STORE_ARG,
    open_store_arg,
    print_header,
)
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.studies import RobustnessReport

#: (column, report attribute) of the settings table; every value is followed by its change from clean
COLUMNS = (
    ("top1", "top1"),
    ("top5", "top5"),
    ("pair", "mean_paired_cosine"),
    ("clean", "clean_cosine"),
    ("L2M", "l2m"),
    ("RMG", "rmg"),
    ("i2t@1", "i2t_r1"),
    ("t2i@1", "t2i_r1"),
)


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def print_robustness(report: RobustnessReport) -> None:
    """One row per setting: each value over its change from clean."""
    print_header(report)
    zs = report.zero_shot or "no class prompts in the store: zero-shot columns are empty"
    from rich import box
    from rich.table import Table

    out = Table(
        title="Robustness",
        title_justify="left",
        caption=f"{report.n_images} images, {report.n_texts} captions; zero-shot: {zs}. "
        "top1/top5 zero-shot accuracy (error = 1 - top1), pair = mean cosine of true pairs, "
        "clean = cosine to the clean image; second line: change from clean",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    out.add_column("setting", no_wrap=True)
    for label, _ in COLUMNS:
        out.add_column(label, justify="right", no_wrap=True, min_width=6)
    for row in report.settings:
        cells = [
            f"{fmt(getattr(row, name), 3)}\n"
            f"{_signed(getattr(row.delta, name)) if row.setting != 'clean' else ''}"
            for _, name in COLUMNS
        ]
        out.add_row(row.setting, *cells)
    stdout.print(out)
    if report.groups is not None:
        print_groups(
            report.groups, [("top-1", "top1"), ("L2M", "l2m"), ("t2i R@1", "t2i_R@1")], 3, True
        )


def robustness(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    captions: str = CAPTIONS_OPT,
    groups: list[str] | None = GROUPS_OPT,
    min_group: int = MIN_GROUP_OPT,
    bootstrap: int = BOOTSTRAP_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Zero-shot top-1/top-5, pair similarity, clean-vs-perturbed cosine, L2M, RMG and R@1
    per perturbation stored by `mgap extract --perturb`, with each change from clean."""
    from mgap.engine.studies.robustness import robustness_report

    opened = open_store_arg(store)
    grouped = load_groups(opened, groups, min_group, bootstrap)
    kwargs = {}
    if grouped is not None:
        kwargs = dict(groupings=grouped[0], options=grouped[1], missing=grouped[2])
    report = robustness_report(opened, captions=captions, **kwargs)
    if as_json:
        print_json(report.to_json())
    else:
        print_robustness(report)


def register(app: typer.Typer) -> None:
    app.command("robustness")(robustness)
