"""`mgap neighbours`: Kendall-tau distance between image and text category neighbourhoods."""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.commands.report_common import JSON_OPT, STORE_ARG, open_store_arg, print_header, table
from mgap.output import fmt, print_json, stdout


def print_neighbours(doc: dict) -> None:
    """Per-category distances, closest first, with the mean in the caption."""
    print_header(doc)
    out = table(
        "Neighbourhoods: image vs text",
        ["category", "Kendall-tau distance"],
        caption=f"mean {fmt(doc['mean_distance'])} over {doc['n_categories']} categories "
        f"(0 same, 0.5 chance); text side: {doc['text_side']}; similarity: "
        f"{doc['similarity']}{', self excluded' if doc['exclude_self'] else ''}",
    )
    for row in sorted(doc["per_category"], key=lambda r: r["distance"]):
        out.add_row(row["name"], fmt(row["distance"]))
    stdout.print(out)


def neighbours(
    store: Path = STORE_ARG,
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
    from mgap.engine.analysis.neighbourhood import neighbourhood_report

    doc = neighbourhood_report(
        open_store_arg(store), similarity=similarity, exclude_self=exclude_self
    )
    if as_json:
        print_json(doc)
    else:
        print_neighbours(doc)


def register(app: typer.Typer) -> None:
    app.command("neighbours")(neighbours)
