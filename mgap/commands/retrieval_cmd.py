"""`mgap retrieval`: image->text and text->image recall and ranks of one store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.compute_opts import DEVICE_OPT, FAST_OPT, SAMPLE_OPT, SEED_OPT, backend
from mgap.commands.group_opts import (
    BOOTSTRAP_OPT,
    GROUPS_OPT,
    MIN_GROUP_OPT,
    load_groups,
    print_groups,
)
from mgap.commands.report_common import (
    BY_CATEGORY_OPT,
    CAPTIONS_OPT,
    CHECK_OPT,
    JSON_OPT,
    KIND_SHORT,
    STORE_ARG,
    open_store_arg,
    print_header,
    recall_cells,
    table,
)
from mgap.commands.score_opt import SCORE_OPT
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import RetrievalReport


def print_retrieval(report: RetrievalReport) -> None:
    """Both directions' recall table, then the per-category rows when asked for."""
    print_header(report)
    out = table(
        "Retrieval",
        ["direction", "R@1", "R@5", "R@10", "med rank", "mean rank"],
        caption=f"{report.n_images} images, {report.n_texts} captions; score {report.score}; "
        f"ties {report.ties}",
    )
    out.add_row("image -> text", *recall_cells(report.i2t))
    out.add_row("text -> image", *recall_cells(report.t2i))
    stdout.print(out)
    estimate = report.estimate
    if estimate is not None and estimate.mode == "sampled":
        spans = ", ".join(
            f"{name} R@1 [{fmt(side.interval['R@1'][0], 3)}, {fmt(side.interval['R@1'][1], 3)}]"
            for name, side in (("i2t", report.i2t), ("t2i", report.t2i))
            if side.interval is not None
        )
        stdout.print(
            f"sampled: {estimate.n_image_queries} image and {estimate.n_text_queries} "
            f"caption queries (seed {estimate.seed}); 95% intervals {spans}",
            highlight=False,
        )
    if report.by_category is not None:
        cats = table(
            "By category",
            ["name", "kind", "img", "i2t R@1", "i2t R@5", "t2i R@1", "t2i R@5"],
            caption="queries of each group, ranked against the whole gallery",
        )
        for row in report.by_category:
            cats.add_row(
                row.name[:16],
                KIND_SHORT[row.kind],
                str(row.n_images),
                fmt(row.i2t.r1, 3),
                fmt(row.i2t.r5, 3),
                fmt(row.t2i.r1, 3),
                fmt(row.t2i.r5, 3),
            )
        stdout.print(cats)


def retrieval(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    by_category: bool = BY_CATEGORY_OPT,
    captions: str = CAPTIONS_OPT,
    groups: list[str] | None = GROUPS_OPT,
    min_group: int = MIN_GROUP_OPT,
    bootstrap: int = BOOTSTRAP_OPT,
    score: str | None = SCORE_OPT,
    device: str = DEVICE_OPT,
    fast: bool = FAST_OPT,
    sample: int | None = SAMPLE_OPT,
    seed: int = SEED_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Image->text and text->image recall@1/5/10 and ranks (CLIP_benchmark hit rates).

    Exact by default; --sample N ranks N seeded queries per direction against the whole
    gallery and reports 95% bootstrap intervals."""
    from mgap.engine.studies.retrieval import retrieval_report

    opened = open_store_arg(store)
    grouped = load_groups(opened, groups, min_group, bootstrap)
    per_group = None
    if grouped is not None:
        from mgap.engine.studies.group_report import retrieval_groups

        def per_group(i2t, t2i, index):
            return retrieval_groups(i2t, t2i, index, *grouped)

    report = retrieval_report(
        opened,
        by_category=by_category,
        captions=captions,
        groups=per_group,
        score=score,
        backend=backend(device, fast),
        sample=sample,
        seed=seed,
    )
    if as_json:
        print_json(report.to_json())
        return
    print_retrieval(report)
    if report.groups is not None:
        print_groups(report.groups, [("i2t R@1", "i2t.R@1"), ("t2i R@1", "t2i.R@1")])


def register(app: typer.Typer) -> None:
    app.command("retrieval")(retrieval)
