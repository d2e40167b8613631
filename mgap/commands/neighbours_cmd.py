"""`mgap neighbours`: Kendall-tau distance between image and text category neighbourhoods."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.report_common import (
    CHECK_OPT,
    JSON_OPT,
    STORE_ARG,
    open_store_arg,
    print_header,
    table,
)
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import NeighbourhoodReport


def print_neighbours(report: NeighbourhoodReport) -> None:
    """Per-category distances, closest first, with the mean in the caption."""
    print_header(report)
    out = table(
        "Neighbourhoods: image vs text",
        ["category", "Kendall-tau distance"],
        caption=f"mean {fmt(report.mean_distance)} over {report.n_categories} categories "
        f"(0 same, 0.5 chance); text side: {report.text_side}; similarity: "
        f"{report.similarity}{', self excluded' if report.exclude_self else ''}",
    )
    for row in sorted(report.per_category, key=lambda r: r.distance):
        out.add_row(row.name, fmt(row.distance))
    stdout.print(out)


def neighbours(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    similarity: str = typer.Option(
        "mean_pairwise",
        "--similarity",
        help="mean_pairwise (the paper: mean cosine over member pairs) or centroid.",
    ),
    exclude_self: bool = typer.Option(
        False, "--exclude-self", help="Leave each category out of its own ranking."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Kendall-tau distance between image and text category neighbourhoods (0 same, 0.5 chance)."""
    from mgap.engine.studies.neighbourhood import neighbourhood_report

    report = neighbourhood_report(
        open_store_arg(store), similarity=similarity, exclude_self=exclude_self
    )
    if as_json:
        print_json(report.to_json())
    else:
        print_neighbours(report)


def register(app: typer.Typer) -> None:
    app.command("neighbours")(neighbours)
