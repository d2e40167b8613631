"""`mgap zeroshot`: zero-shot classification accuracy from a store's class prompts."""

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
    CHECK_OPT,
    JSON_OPT,
    STORE_ARG,
    open_store_arg,
    print_header,
    table,
)
from mgap.commands.score_opt import SCORE_OPT
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import ZeroShotReport
    from mgap.engine.reports.groups import GroupsReport


def print_zeroshot(report: ZeroShotReport) -> None:
    """Overall and per-class accuracy; classes with neither images nor predictions are left out."""
    print_header(report)
    multi = report.multi_label
    columns = ["class", "images", "accuracy", "recall", "predicted"] + (["AP"] if multi else [])
    mean_ap = (
        f"; mAP {fmt(report.mean_average_precision)} (CLIP_benchmark; "
        f"{fmt(report.mean_average_precision_present)} over classes present)"
        if multi
        else ""
    )
    out = table(
        f"Zero-shot ({report.label_set})",
        columns,
        caption=f"accuracy {fmt(report.accuracy)}, mean per class "
        f"{fmt(report.mean_class_accuracy)}, mean per-class recall "
        f"{fmt(report.mean_per_class_recall)} over {report.n} images"
        f"{' (accuracy: top-1 in labels)' if multi else ''}{mean_ap}; score {report.score}",
    )
    for row in report.per_class:
        if row.n or row.n_predicted:
            cells = [row.name, str(row.n), fmt(row.accuracy), fmt(row.recall)]
            cells.append(str(row.n_predicted))
            if multi:
                cells.append(fmt(row.average_precision))
            out.add_row(*cells)
    stdout.print(out)


def zeroshot(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    labels: str = typer.Option(
        "category", "--labels", help="Label set: category, or an image attribute name."
    ),
    groups: list[str] | None = GROUPS_OPT,
    min_group: int = MIN_GROUP_OPT,
    bootstrap: int = BOOTSTRAP_OPT,
    score: str | None = SCORE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Zero-shot classification accuracy from the store's class prompt embeddings."""
    from mgap.engine.studies.zeroshot import zero_shot_report

    opened = open_store_arg(store)
    grouped = load_groups(opened, groups, min_group, bootstrap)
    report = zero_shot_report(
        opened,
        labels,
        score=score,
        groups=None if grouped is None else lambda: _groups(opened, grouped, labels, score),
    )
    if as_json:
        print_json(report.to_json())
        return
    print_zeroshot(report)
    if report.groups is not None:
        print_groups(report.groups, [("top-1", "accuracy"), ("top-5", "top5_accuracy")])


def _groups(opened, grouped, labels: str, score: str | None) -> GroupsReport:
    """The `--groups` document."""
    from mgap.engine.studies.group_report import store_groups

    return store_groups(opened, "zeroshot", *grouped, label_set=labels, score=score)


def register(app: typer.Typer) -> None:
    app.command("zeroshot")(zeroshot)
