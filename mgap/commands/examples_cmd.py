"""`mgap examples`: which images (or captions) of a category carry the gap, and what they show."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from mgap.commands.report_common import CHECK_OPT, JSON_OPT, STORE_ARG, open_store_arg
from mgap.core.errors import UsageError
from mgap.output import fmt, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.examples import Example, ExamplesReport


def _example_lines(number: int, ex: Example, side: str) -> Text:
    """An example's header line, its true partners and its retrieved candidates."""
    name = f"{ex.text}" if side == "text" else f"{ex.id}  {ex.path or ''}"
    text = Text(f"{number:>2}. ", style="bold")
    text.append(name.strip(), style="bold")
    text.append(
        f"  [{ex.category or '-'}]  pair cos {fmt(ex.pair_cosine, 3)}  rank {fmt(ex.rank, 1)}"
        f"  centroid d {fmt(ex.centroid_distance, 3)}\n"
    )
    for m in ex.true:
        text.append(f"    true  {fmt(m.cosine, 3)}  {m.label}\n")
    for m in ex.retrieved:
        mark, style = ("✓", "green") if m.true else ("✗", "red")
        text.append(f"    {mark}", style=style)
        text.append(f"     {fmt(m.cosine, 3)}  {m.label}  [{m.category or '-'}]\n")
    return text


def print_examples(report: ExamplesReport) -> None:
    """Each example, its true partners and what retrieval returned in their place."""
    who = "captions" if report.side == "text" else "images"
    stdout.print(
        f"{report.order} {len(report.examples)} of {report.n_candidates} {who} in "
        f"{report.category or 'the store'} by {report.sort}; ranks {report.ranks} "
        f"(ties broken at random, in expectation)",
        highlight=False,
    )
    for i, ex in enumerate(report.examples, 1):
        stdout.print(_example_lines(i, ex, report.side), highlight=False, end="")


def show_picture(store, report: ExamplesReport, number: int, ascii_only: bool) -> None:
    """Draw example `number` (1-based) with the picture pane's drawing, on stdout."""
    from mgap.tui.picture import load_picture, picture_mode, picture_renderable

    ex = report.examples[number - 1]
    root = store.attrs.get("data_root")
    img, notice = load_picture(str(root) if root else None, ex.path)
    if img is None:
        stdout.print(notice, highlight=False, soft_wrap=True)
        return
    mode = picture_mode(ascii_only)
    if mode not in ("ascii", "halfcell") and not stdout.is_terminal:  # graphics to a file
        mode = "halfcell"
    stdout.print(picture_renderable(img, min(stdout.width, 80), 24, mode))


def examples(
    store: Path = STORE_ARG,
    check: bool = CHECK_OPT,
    category: str | None = typer.Option(None, "--category", help="A category or supercategory."),
    sort: str = typer.Option("pair", "--sort", help="pair, rank or centroid."),
    worst: int | None = typer.Option(None, "--worst", help="The N worst (default 10)."),
    best: int | None = typer.Option(None, "--best", help="The N best instead."),
    side: str = typer.Option("image", "--side", help="image, or text (captions as queries)."),
    k: int = typer.Option(5, "--k", help="Retrieved candidates shown per example."),
    show: int | None = typer.Option(None, "--show", help="Draw example N's picture."),
    ascii_only: bool = typer.Option(False, "--ascii", help="Draw with plain characters."),
    as_json: bool = JSON_OPT,
) -> None:
    """The examples that carry the gap: worst-aligned images (or captions) of a category,
    their true captions, their retrieval rank and what the model retrieves instead."""
    from mgap.engine.studies.examples import examples_report

    if worst is not None and best is not None:
        raise UsageError("pass --worst N or --best N, not both")
    if show is not None and as_json:
        raise UsageError("--show draws on the terminal; drop --json to see the picture")
    opened = open_store_arg(store)
    n = best if best is not None else (worst if worst is not None else 10)
    report = examples_report(
        opened, category=category, sort=sort, n=n, worst=best is None, side=side, k=k
    )
    if show is not None and not 1 <= show <= len(report.examples):
        raise UsageError(
            f"--show {show} is out of range: this report has {len(report.examples)} examples",
            hint="pass a number from 1 to the count shown",
        )
    if as_json:
        print_json(report.to_json())
    else:
        print_examples(report)
    if show is not None:
        show_picture(opened, report, show, ascii_only)


def register(app: typer.Typer) -> None:
    app.command("examples")(examples)
