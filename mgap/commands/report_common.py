"""Options, tables and the store header shared by the report commands (gap, retrieval, …).

Kept apart so that each command module holds only its own command and printer, and can be
imported (and extended with options) on its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.output import fmt, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import Recall, StoreHeader

STORE_ARG = typer.Argument(..., help="Store file (.h5).", show_default=False)
JSON_OPT = typer.Option(False, "--json", help="Print one JSON document on stdout.")
BY_CATEGORY_OPT = typer.Option(
    False, "--by-category", help="Add results per primary category and supercategory."
)
CAPTIONS_OPT = typer.Option(
    "all", "--captions", help="all: every caption; first: the first caption per image."
)

#: the reader's switch (mgap.store.reader): compare every block read with its CRC32
CHECK_ENV = "MGAP_CHECK"


def _check_blocks(ctx: typer.Context, value: bool) -> bool:
    """`--check`: every store this command opens, here or deep in the engine, checks each
    block it reads; the previous setting comes back when the command ends (in-process
    callers such as the tests run many commands)."""
    if value:
        before = os.environ.get(CHECK_ENV)
        os.environ[CHECK_ENV] = "1"
        ctx.call_on_close(
            lambda: (
                os.environ.pop(CHECK_ENV, None)
                if before is None
                else os.environ.__setitem__(CHECK_ENV, before)
            )
        )
    return value


CHECK_OPT = typer.Option(
    False,
    "--check",
    callback=_check_blocks,
    expose_value=False,
    help=f"Check every embedding block read against its CRC32 (or set {CHECK_ENV}=1).",
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


def print_header(head: StoreHeader) -> None:
    """The store path and its model / dataset / split / status line above each report."""
    stdout.print(
        f"[bold]{head.store}[/]\nmodel {head.model or '-'}  dataset {head.dataset or '-'}"
        f"  split {head.split or '-'}  status {head.status or '-'}",
        highlight=False,
    )


def recall_cells(recall: Recall) -> list[str]:
    """R@1/5/10 and median/mean rank of one retrieval direction, formatted for a table row."""
    return [
        fmt(recall.r1, 3),
        fmt(recall.r5, 3),
        fmt(recall.r10, 3),
        fmt(recall.median_rank, 1),
        fmt(recall.mean_rank, 1),
    ]
