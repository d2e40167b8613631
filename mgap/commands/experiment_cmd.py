"""`mgap experiment shift|ablate|center`: move the modalities along the gap, drop gap
dimensions, or centre each modality; every one is a registered intervention
(`mgap.engine.measures.interventions`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.group_opts import GROUPS_OPT, MIN_GROUP_OPT, load_groups
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
    from mgap.engine.reports.interventions import BeforeAfter, InterventionReport

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


#: (label, short label, delta key, how to read one side of a BeforeAfter, digits) per row;
#: a short label of None leaves the row out of the per-group table (80 columns; --json has all)
CENTER_ROWS = (
    ("L2M", "ΔL2M", "l2m", lambda m: m.l2m, 4),
    ("RMG", "ΔRMG", "rmg", lambda m: m.rmg, 4),
    ("paired cos", None, "mean_paired_cosine", lambda m: m.mean_paired_cosine, 4),
    ("i2t R@1", "Δi2t@1", "i2t_r1", lambda m: m.i2t.r1, 3),
    ("i2t R@5", None, "i2t_r5", lambda m: m.i2t.r5, 3),
    ("t2i R@1", "Δt2i@1", "t2i_r1", lambda m: m.t2i.r1, 3),
    ("t2i R@5", None, "t2i_r5", lambda m: m.t2i.r5, 3),
    ("zero-shot top-1", "Δzs@1", "zeroshot_top1", lambda m: m.zeroshot_top1, 3),
)


def _cells(part: BeforeAfter, label: str, delta_key: str, read, digits: int) -> list[str]:
    change = getattr(part.delta, delta_key)
    signed = "-" if change is None else f"{change:+.{digits}f}"
    return [label, fmt(read(part.before), digits), fmt(read(part.after), digits), signed]


def print_before_after(report: InterventionReport) -> None:
    """The store's numbers before and after, then each group's changes."""
    out = table(
        f"{report.intervention}: {report.description}", ["metric", "before", "after", "delta"]
    )
    for label, _, delta_key, read, digits in CENTER_ROWS:
        if read(report.before) is not None or read(report.after) is not None:
            out.add_row(*_cells(report, label, delta_key, read, digits))
    stdout.print(out)
    if not report.groups:
        return
    shown = [spec for spec in CENTER_ROWS if spec[1] is not None]
    columns = ["group", "n", *(short for _, short, *_ in shown)]
    groups = table("Per group (after − before)", columns, caption="* fewer than --min-group")
    for row in report.groups:
        changes = [_cells(row, short, key, read, 3)[3] for _, short, key, read, _ in shown]
        name = f"{row.grouping}={row.group}"
        groups.add_row(name, f"{row.n}{'*' if row.small else ''}", *changes)
    stdout.print(groups)


def center(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    groups: list[str] | None = GROUPS_OPT,
    min_group: int = MIN_GROUP_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Subtract each modality's mean and re-normalise: gap, retrieval and zero-shot before and
    after, with deltas (per group with --groups)."""
    from mgap.engine.studies.experiments import intervention_report

    opened = open_store_arg(store)
    grouped = load_groups(opened, groups, min_group, 0)
    groupings = None if grouped is None else grouped[0]
    report = intervention_report(opened, "center", groupings=groupings, min_n=min_group)
    if as_json:
        print_json(report.to_json())
    else:
        print_header(report)
        print_before_after(report)


def register(app: typer.Typer) -> None:
    experiment = typer.Typer(
        help="Gap experiments: shift the modalities, ablate the gap dimensions, centre them.",
        no_args_is_help=True,
    )
    experiment.command("shift")(shift)
    experiment.command("ablate")(ablate)
    experiment.command("center")(center)
    app.add_typer(experiment, name="experiment")
