"""`mgap compare`: one row per store on the same images; `--correlate` the gap against
performance across stores; `--paired` B − A with image-resampling intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mgap.commands.compute_opts import DEVICE_OPT, backend
from mgap.core.errors import UsageError
from mgap.output import fmt, note, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.compare import (
        CompareReport,
        CorrelationBlock,
        CorrelationValue,
        PairedBlock,
    )

DASH = "—"
#: what `--by` orders the stores by (engine/studies/trajectory.py)
BY = ("step",)
#: tables are printed at least this wide (a pipe or a narrow terminal would squash them)
WIDTH = 180
#: (column title, row key) of the table, after the store's model and dataset
COLUMNS = (
    ("n", "n_images"),
    ("geometry", "geometry"),
    ("L2M", "l2m"),
    ("RMG", "rmg"),
    ("paired cos", "paired_cosine"),
    ("intra img", "intra_image_cosine"),
    ("intra txt", "intra_text_cosine"),
    ("i2t R@1", "i2t_r1"),
    ("i2t R@5", "i2t_r5"),
    ("t2i R@1", "t2i_r1"),
    ("t2i R@5", "t2i_r5"),
    ("ZS top-1", "zeroshot_top1"),
    ("logit scale", "logit_scale"),
    ("step", "step"),
)


def _print(table) -> None:
    """A table at least WIDTH wide, whatever the terminal (scroll rather than squash)."""
    from rich.console import Console

    Console(width=max(stdout.width, WIDTH), soft_wrap=False).print(table)


def _cell(value) -> str:
    if value is None:
        return DASH
    return fmt(value, 4) if isinstance(value, float) else str(value)


def print_rows(report: CompareReport) -> None:
    from rich.table import Table

    shared = report.shared_ids
    where = f"{shared} shared image ids" if shared is not None else "each store's own images"
    table = Table(
        title=f"{report.n_stores} stores compared on {where}",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("model", no_wrap=True)
    table.add_column("dataset/split", no_wrap=True)
    for title, _ in COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for row in report.rows:
        label = f"{row.dataset or DASH}/{row.split or DASH}"
        cells = (_cell(getattr(row, key)) for _, key in COLUMNS)
        table.add_row(row.model or row.store, label, *cells)
    _print(table)
    note(f"scope: {report.scope}")


def _coefficient(entry: CorrelationValue) -> str:
    low, high = entry.interval
    return f"{fmt(entry.value, 3)} [{fmt(low, 2)}, {fmt(high, 2)}] p={fmt(entry.p_value, 3)}"


def print_correlation(block: CorrelationBlock) -> None:
    from rich.table import Table

    table = Table(
        title=f"gap vs performance across stores ({block.bootstrap} store resamples, "
        f"{block.permutations} permutations, seed {block.seed})",
        title_justify="left",
        header_style="bold",
    )
    for title in ("x", "y", "Spearman ρ [95%] p", "Kendall τ [95%] p", "Pearson r [95%] p"):
        table.add_column(title, no_wrap=True)
    for pair in block.pairs:
        table.add_row(
            pair.x,
            pair.y,
            *(_coefficient(m) for m in (pair.spearman, pair.kendall, pair.pearson)),
        )
    _print(table)
    if block.skipped:
        note("not correlated (missing for some store): " + ", ".join(block.skipped))


def print_paired(block: PairedBlock) -> None:
    from rich.table import Table

    table = Table(
        title=f"B − A on {block.n_images} shared images ({block.bootstrap} paired "
        f"resamples, seed {block.seed})\nA {block.a}\nB {block.b}",
        title_justify="left",
        header_style="bold",
    )
    for title in ("metric", "A", "B", "B − A", "95% interval"):
        table.add_column(title, justify="left" if title == "metric" else "right")
    for d in block.differences:
        low, high = d.interval
        table.add_row(
            d.metric,
            _cell(d.a),
            _cell(d.b),
            _cell(d.difference),
            DASH if low is None else f"[{fmt(low, 4)}, {fmt(high, 4)}]",
        )
    _print(table)


def compare(
    stores: list[str] = typer.Argument(..., help="Stores to compare (one per model/checkpoint)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    png: str | None = typer.Option(
        None,
        "--png",
        help="Also draw the --x/--y scatter (with --by step: the trajectory) to FILE.",
    ),
    sort: str | None = typer.Option(
        None, "--sort", help="Order rows by a column (l2m, i2t_r1, ...); -COLUMN descending."
    ),
    allow_mixed: bool = typer.Option(
        False, "--allow-mixed", help="Compare stores of different datasets, each on its own images."
    ),
    correlate: bool = typer.Option(
        False, "--correlate", help="Every gap metric against every performance metric (≥ 4 stores)."
    ),
    x: str | None = typer.Option(None, "--x", help="Scatter x column (default l2m)."),
    y: str | None = typer.Option(
        None, "--y", help="Scatter y column (default zeroshot_top1, else i2t_r1)."
    ),
    paired: bool = typer.Option(
        False, "--paired", help="B − A per metric with a paired image bootstrap (two stores)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=1, help="Bootstrap resamples."),
    permutations: int = typer.Option(
        1000, "--permutations", min=1, help="Permutations of the --correlate p-values."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the resamples and permutations."),
    by: str | None = typer.Option(
        None, "--by", help="'step': order by checkpoint step and draw the trajectory."
    ),
    device: str = DEVICE_OPT,
) -> None:
    """One row per store: gap, retrieval, zero-shot, logit scale and step, on shared images."""
    from mgap.commands.compare_out import draw, draw_trajectory
    from mgap.engine.studies.compare import compare_report

    if by is not None and by not in BY:
        raise UsageError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    be = backend(device, False)
    report = compare_report(stores, allow_mixed=allow_mixed, sort=sort, by=by, backend=be)
    if correlate:
        from mgap.engine.studies.correlate import correlation_block

        report = report.with_fields(
            correlation=correlation_block(
                report.rows, boot=bootstrap, perms=permutations, seed=seed
            )
        )
    if paired:
        from mgap.engine.studies.paired import paired_report

        report = report.with_fields(
            paired=paired_report(stores, boot=bootstrap, seed=seed, backend=be)
        )
    if json_out:
        print_json(report.to_json())
    else:
        print_rows(report)
        if report.correlation is not None:
            print_correlation(report.correlation)
        if report.paired is not None:
            print_paired(report.paired)
    if report.trajectory is not None:
        draw_trajectory(report.trajectory, png if not correlate else None, not json_out)
    if correlate or (png and report.trajectory is None):
        draw(report.rows, x, y, png, terminal=correlate and not json_out)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
