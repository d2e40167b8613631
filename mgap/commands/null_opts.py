"""`--permutations N` of `mgap cka` and `mgap knn`: a calibrated null printed under the
score (the numbers: `mgap.engine.studies.nulls`, docs/design.md §7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mgap.output import fmt, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import NullScore, PermutationNull

PERMUTATIONS_OPT = typer.Option(
    None,
    "--permutations",
    min=1,
    help="Also a null from N seeded shuffles of the second REF's rows: null mean, sd, "
    "p = (1 + #{null >= observed})/(1 + N) and observed - null mean (JSON: `null`).",
)


def _row(table, label: str, entry: NullScore) -> None:
    table.add_row(
        label,
        fmt(entry.observed, 3),
        f"{fmt(entry.mean, 3)} ± {fmt(entry.sd, 3)}",
        fmt(entry.excess, 3),
        fmt(entry.p_value, 4),
    )


def print_null(null: PermutationNull) -> None:
    """One row per score (a CKA pair, or mutual k-NN and CKNNA) against its null."""
    from rich.table import Table

    table = Table(
        title=f"permutation null: {null.permutations} shuffles of {null.permuted} "
        f"(seed {null.seed}, n = {null.n})",
        title_justify="left",
        header_style="bold",
    )
    for column in ("score", "observed", "null mean ± sd", "observed − null", "p"):
        table.add_column(column, justify="left" if column == "score" else "right")
    for pair in null.pairs or []:
        _row(table, " vs ".join(pair.refs or []), pair)
    for name, entry in (("mutual_knn", null.mutual_knn), ("cknna", null.cknna)):
        if entry is not None:
            _row(table, name, entry)
    stdout.print(table)
