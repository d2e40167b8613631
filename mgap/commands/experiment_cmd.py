"""`mgap experiment shift|ablate`: move the modalities along the gap, or drop gap dimensions."""

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
from mgap.core.errors import UsageError
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import ExperimentStep

DEFAULT_LAMBDAS = "-1,-0.5,-0.25,0,0.25,0.5,0.75,1"


def parse_lambdas(text: str) -> list[float]:
    """Comma-separated shifts to floats; a usage error names the bad value and an example."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"--lambdas must be comma-separated numbers, got {text!r}",
            hint="e.g. --lambdas -1,-0.5,0,0.5,1",
        ) from None
    if not values:
        raise UsageError("--lambdas is empty", hint="e.g. --lambdas -1,-0.5,0,0.5,1")
    return values


def print_steps(title: str, label: str, steps: list[tuple[str, ExperimentStep]]) -> None:
    """One row per (step label, step): gap, paired cosine, R@1 both ways, InfoNCE if computed."""
    columns = [label, "L2M", "RMG", "paired cos", "i2t R@1", "t2i R@1"]
    with_infonce = any(step.infonce is not None for _, step in steps)
    if with_infonce:
        columns.append("InfoNCE")
    out = table(title, columns)
    for name, step in steps:
        cells = [
            name,
            fmt(step.l2m),
            fmt(step.rmg),
            fmt(step.mean_paired_cosine),
            fmt(step.i2t.r1, 3),
            fmt(step.t2i.r1, 3),
        ]
        if with_infonce:
            cells.append(fmt(step.infonce))
        out.add_row(*cells)
    stdout.print(out)


def shift(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    lambdas: str = typer.Option(
        DEFAULT_LAMBDAS, "--lambdas", help="Comma-separated shifts, e.g. --lambdas -1,0,1."
    ),
    logit_scale: float = typer.Option(100.0, "--logit-scale", help="InfoNCE logit scale."),
    as_json: bool = JSON_OPT,
) -> None:
    """Mind the Gap's shift along the gap vector: gap, retrieval and InfoNCE per lambda."""
    from mgap.engine.studies.experiments import shift_report

    values = parse_lambdas(lambdas)
    report = shift_report(open_store_arg(store), values, logit_scale)
    if as_json:
        print_json(report.to_json())
    else:
        print_header(report)
        steps = [(fmt(step.lam, 3), step) for step in report.steps]
        print_steps(f"Gap shift (InfoNCE at logit scale {logit_scale:g})", "lambda", steps)


def ablate(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    k_max: int = typer.Option(10, "--k-max", min=0, help="Drop up to this many top gap dims."),
    as_json: bool = JSON_OPT,
) -> None:
    """Drop the top-k gap dimensions, re-normalise, recompute gap and retrieval."""
    from mgap.engine.studies.experiments import ablate_report

    report = ablate_report(open_store_arg(store), k_max)
    if as_json:
        print_json(report.to_json())
    else:
        print_header(report)
        print_steps("Gap dimension ablation", "k", [(str(step.k), step) for step in report.steps])


def register(app: typer.Typer) -> None:
    experiment = typer.Typer(
        help="Gap experiments: shift the modalities, ablate the gap dimensions.",
        no_args_is_help=True,
    )
    experiment.command("shift")(shift)
    experiment.command("ablate")(ablate)
    app.add_typer(experiment, name="experiment")
