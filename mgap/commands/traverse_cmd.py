"""`mgap traverse`: MERU's image traversal as text: from an image towards the origin of the
hyperboloid, the nearest captions (or class prompts) at each step."""

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
    from mgap.engine.reports.studies import TraverseReport


def print_traversal(report: TraverseReport) -> None:
    """One row per step: t, distance from the origin, and the nearest texts."""
    print_header(report)
    own = report.image_captions[0] if report.image_captions else "-"
    stdout.print(f"image {report.image} (row {report.image_row}): {own}", highlight=False)
    out = table(
        f"Traversal to the origin ({report.candidates}, score {report.score})",
        ["step", "t", "d(O,·)", "nearest"],
        caption="* = the text's entailment cone holds the point; [ROOT] = the origin",
    )
    out.columns[-1].justify = "left"
    for step in report.steps:
        names = [f"{n.text[:40]}{'*' if n.entails else ''}" for n in step.nearest]
        out.add_row(
            str(step.step),
            fmt(step.t, 2),
            fmt(step.origin_distance, 3),
            names[0] if names else "-",
        )
        for name in names[1:]:
            out.add_row("", "", "", name)
    stdout.print(out)


#: the most points `--steps` puts on a geodesic: far more than a table can show
MAX_STEPS = 10_000


def traverse(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    image: str = typer.Option(..., "--image", help="Image id (as `mgap export` lists them)."),
    steps: int = typer.Option(
        20,
        "--steps",
        min=2,
        max=MAX_STEPS,
        help=f"Points on the geodesic, image to origin (at most {MAX_STEPS:,}).",
    ),
    k: int = typer.Option(3, "--k", min=1, help="Nearest texts listed per step."),
    prompts: bool = typer.Option(
        False, "--prompts", help="Rank the store's class prompts instead of its captions."
    ),
    labels: str = typer.Option("category", "--labels", help="Prompt set used with --prompts."),
    entailed_only: bool = typer.Option(
        False,
        "--entailed-only",
        help="Keep only texts whose entailment cone holds the point (MERU's traversal rule).",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Walk the geodesic from an image to the origin (Lorentz stores): nearest texts per step."""
    from mgap.engine.studies.traverse import traverse_report

    report = traverse_report(
        open_store_arg(store),
        image,
        steps=steps,
        k=k,
        prompts=prompts,
        label_set=labels,
        entailed_only=entailed_only,
    )
    if as_json:
        print_json(report.to_json())
        return
    print_traversal(report)


def register(app: typer.Typer) -> None:
    app.command("traverse")(traverse)
