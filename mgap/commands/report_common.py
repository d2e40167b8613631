"""Options, tables and the store header shared by the report commands (gap, retrieval, …).

Kept apart so that each command module holds only its own command and printer, and can be
imported (and extended with options) on its own.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.output import fmt, stdout

STORE_ARG = typer.Argument(..., help="Store file (.h5).", show_default=False)
JSON_OPT = typer.Option(False, "--json", help="Print one JSON document on stdout.")
BY_CATEGORY_OPT = typer.Option(
    False, "--by-category", help="Add results per primary category and supercategory."
)
CAPTIONS_OPT = typer.Option(
    "all", "--captions", help="all: every caption; first: the first caption per image."
)

#: short labels for the kind column of the per-category tables
KIND_SHORT = {"category": "cat", "supercategory": "super"}


def table(title: str, columns: list[str], caption: str | None = None):
    """A rich table with a left-aligned first column and right-aligned numbers."""
    from rich.table import Table

    out = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        header_style="bold",
    )
    for i, column in enumerate(columns):
        out.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    return out


def open_store_arg(path: Path):
    """Open the store named on the command line (imported lazily to keep start-up light)."""
    from mgap.store import open_store

    return open_store(path)


def print_header(doc: dict) -> None:
    """The store path and its model / dataset / split / status line above each report."""
    stdout.print(
        f"[bold]{doc['store']}[/]\nmodel {doc['model'] or '-'}  dataset {doc['dataset'] or '-'}"
        f"  split {doc['split'] or '-'}  status {doc['status'] or '-'}",
        highlight=False,
    )


def recall_cells(side: dict) -> list[str]:
    """R@1/5/10 and median/mean rank of one retrieval direction, formatted for a table row."""
    return [
        fmt(side["R@1"], 3),
        fmt(side["R@5"], 3),
        fmt(side["R@10"], 3),
        fmt(side["median_rank"], 1),
        fmt(side["mean_rank"], 1),
    ]
