"""Text output of a layers x layers report (`mgap cka|knn A@all B@all`): the shaded
matrix, the best layer pair, and for sampled runs the interval of the best cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mgap.commands.shade import shade_cell
from mgap.output import fmt, note, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.layer_matrix import LayerMatrixReport, LayerPair

SPACE_OPT = typer.Option(
    "raw",
    "--space",
    help="Per-layer space of a REF@LAYER: raw (the pooled state) or lens (through the head).",
)
#: the spaces `--space` accepts (store/layers.py SPACES)
SPACES = ("raw", "lens")
MEASURES = {"cka": "CKA", "mutual_knn": "mutual k-NN"}


def check_space(space: str, permutations: int | None) -> None:
    from mgap.core.errors import UsageError

    if space not in SPACES:
        raise UsageError(f"unknown --space {space!r}", hint="use --space raw or --space lens")
    if space != "raw" and permutations is not None:
        raise UsageError(
            "--permutations reads raw layers only", hint="drop --space lens or --permutations"
        )


def _title(report: LayerMatrixReport) -> str:
    a, b = report.names
    what = MEASURES.get(report.measure, report.measure)
    if report.kernel is not None:
        what = f"{report.kernel} {what}, {report.estimator}"
    if report.k is not None:
        what += f" (k = {report.k})"
    sampled = report.estimate is not None and report.estimate.mode == "sampled"
    rows = f"from {report.estimate.n} sampled rows" if sampled else f"n = {report.n}"
    return f"{what}: {a} layers (rows) x {b} layers (columns), {report.space} space, {rows}"


def _table(title: str, report: LayerMatrixReport, matrix):
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("layer", justify="right", no_wrap=True)
    for column in report.columns:
        table.add_column(str(column), justify="right", no_wrap=True, min_width=5)
    for layer, row in zip(report.rows, matrix, strict=True):
        table.add_row(str(layer), *(shade_cell(v) for v in row))
    return table


def _best(label: str, pair: LayerPair | None, names: list[str]) -> None:
    if pair is None:
        note(f"{label}: undefined (every cell is NaN)")
        return
    note(
        f"{label}: {names[0]} layer {pair.row} with {names[1]} layer {pair.column} "
        f"= {fmt(pair.value, 3)}"
    )


def print_layer_matrix(report: LayerMatrixReport) -> None:
    stdout.print(_table(_title(report), report, report.matrix))
    _best("best layer pair", report.best, report.names)
    if report.cknna is not None:
        stdout.print(_table("CKNNA", report, report.cknna))
        _best("best CKNNA layer pair", report.best_cknna, report.names)
    if report.chance is not None:
        note(f"chance k/(n-1) = {fmt(report.chance, 3)}")
    estimate = report.estimate
    if estimate is not None and estimate.mode == "sampled" and report.best is not None:
        i = report.rows.index(report.best.row)
        j = report.columns.index(report.best.column)
        low, high = estimate.interval["matrix"][i][j]
        note(f"95% interval of the best cell: [{fmt(low, 3)}, {fmt(high, 3)}] (--json: every cell)")
    if report.sigma is not None:
        note("RBF σ per layer: rows " + ", ".join(fmt(s, 4) for s in report.sigma["rows"]))
