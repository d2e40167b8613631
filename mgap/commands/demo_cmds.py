"""`mgap demo`, `mgap train-toy` and `mgap object-bias`: the offline default and its experiments.

`mgap demo` works on a fresh machine with no weights or data: it trains `toy:demo` on the
synthetic dataset if missing, extracts stores for it and its random-initialised twin,
prints gap, retrieval, zero-shot and object-bias results for both, and opens the TUI.
The pipeline itself (training, staleness, extraction, summaries) is the engine's
`mgap.engine.toy.demo`; this module parses options and prints. Torch, textual and the
analysis modules are imported inside the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.report_common import CHECK_OPT
from mgap.output import fmt, note, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.pipeline import DemoReport, DemoStore, ToySweepReport
    from mgap.engine.reports.studies import ModalityBias, ObjectBiasReport


def _table(title: str, columns: list[str]):
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def _train_config(
    temperature: float,
    learned: bool,
    caption_detail: float,
    epochs: int,
    seed: int,
    n_train: int,
):
    from mgap.engine.toy.config import TrainConfig

    config = TrainConfig(
        temperature=temperature,
        learned_temperature=learned,
        caption_detail=caption_detail,
        epochs=epochs,
        seed=seed,
        n_train=n_train,
    )
    config.validate()
    return config


# ---- mgap train-toy ---------------------------------------------------------------
def _print_sweep(report: ToySweepReport) -> None:
    kind = report.sweep
    table = _table(
        f"Gap vs {kind} (toy CLIPs, synthetic test split)",
        [kind, "L2M", "RMG", "cos", "t2i R@1", "0-shot", "final T", "s"],
    )
    for row in report.rows:
        table.add_row(
            fmt(row[kind], 3),
            fmt(row["l2m"], 3),
            fmt(row["rmg"], 3),
            fmt(row["mean_paired_cosine"], 3),
            fmt(row["t2i_R@1"], 3),
            fmt(row["zero_shot_shape_accuracy"], 3),
            fmt(row["final_temperature"], 3),
            fmt(row["seconds"], 0),
        )
    stdout.print(table)
    stdout.print(
        "cos: mean paired cosine; 0-shot: zero-shot shape accuracy (chance 0.167)",
        highlight=False,
    )


def train_toy_cmd(
    name: str = typer.Option("toy", "--name", help="Saved as toy:NAME in the cache directory."),
    temperature: float = typer.Option(
        0.07, "--temperature", help="Softmax temperature (the initial one if learned)."
    ),
    learned_temperature: bool = typer.Option(
        False, "--learned-temperature", help="Learn the temperature, CLIP style."
    ),
    caption_detail: float = typer.Option(
        0.5, "--caption-detail", help="Share of image attributes each caption names, 0..1."
    ),
    epochs: int = typer.Option(20, "--epochs", help="Passes over the training images."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed of the data, initialisation and order."
    ),
    n_train: int = typer.Option(2000, "--n-train", help="Synthetic training images."),
    sweep: str | None = typer.Option(
        None, "--sweep", help="temperature or caption-detail: train one toy per value."
    ),
    values: str | None = typer.Option(
        None, "--values", help="Comma-separated sweep values (default: five per sweep)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing toy:NAME."),
    checkpoints: Path | None = typer.Option(
        None,
        "--checkpoints",
        help="Also save every epoch K as DIR/epoch_K.pt (extract them with toy:NAME@DIR/epoch_*.pt).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Train a toy CLIP on the synthetic dataset, or sweep temperature / caption detail."""
    from mgap.core.errors import UsageError

    config = _train_config(temperature, learned_temperature, caption_detail, epochs, seed, n_train)
    if checkpoints is not None and (sweep is not None or checkpoints.is_file()):
        raise UsageError(
            f"--checkpoints {checkpoints} needs a folder and one model, not a file or --sweep",
            hint="give a folder and drop --sweep",
        )
    if sweep is not None:
        from mgap.engine.toy.config import parse_values

        sweep_values = parse_values(sweep, values)
        from mgap.engine.toy.sweep import run_sweep

        sweep_report = run_sweep(sweep, sweep_values, config, log=note)
        print_json(sweep_report.to_json()) if json_out else _print_sweep(sweep_report)
        return
    if values is not None:
        raise UsageError("--values needs --sweep", hint="add --sweep temperature|caption-detail")
    from mgap.engine.toy.storage import toy_dir, toy_exists

    if toy_exists(name) and not overwrite:
        raise UsageError(
            f"toy:{name} already exists in {toy_dir(name)}",
            hint="pass --overwrite to retrain it, or choose another --name",
        )
    from mgap.engine.toy.demo import train_and_save

    report = train_and_save(
        name, config, log=note, train_log=None if json_out else note, checkpoints=checkpoints
    )
    if json_out:
        print_json(report.to_json())
        return
    stdout.print(
        f"toy:{name} saved in {report.folder}: zero-shot shape accuracy "
        f"{report.zero_shot_shape_accuracy:.3f} (chance {report.chance_accuracy:.3f}), "
        f"loss {report.loss_first_epoch:.3f} -> {report.loss_last_epoch:.3f}, "
        f"{report.seconds:.0f} s",
        highlight=False,
    )


# ---- mgap object-bias -------------------------------------------------------------
def _print_object_bias(report: ObjectBiasReport) -> None:
    table = _table(
        f"Object bias: {report.model or Path(report.store).name}",
        ["labels", "image within-across", "text within-across"],
    )
    sides = [report.image, report.text]

    def cell(side: ModalityBias | None, key: str | None) -> str:
        if side is None:
            return "-"
        row = side.objects if key is None else side.attributes[key]
        return fmt(row.separation)

    table.add_row("object (category)", *(cell(s, None) for s in sides))
    for key in report.attribute_keys:
        table.add_row(f"attribute {key}", *(cell(s, key) for s in sides))
    table.add_row("[bold]object bias[/]", *(fmt(s.object_bias) if s else "-" for s in sides))
    stdout.print(table)
    shots = report.zero_shot
    stdout.print(
        "zero-shot accuracy: " + ", ".join(f"{k} {fmt(v, 3)}" for k, v in shots.items()),
        highlight=False,
    )


def object_bias_cmd(
    store: Path = typer.Argument(..., help="Store file (.h5).", show_default=False),
    check: bool = CHECK_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Object vs attribute organisation of each modality (MOAD) and zero-shot accuracies."""
    from mgap.engine.studies.object_bias import object_bias_report
    from mgap.store import open_store

    report = object_bias_report(open_store(store))
    print_json(report.to_json()) if json_out else _print_object_bias(report)


# ---- mgap demo ----------------------------------------------------------------------
def _print_demo(report: DemoReport) -> None:
    summaries = report.stores
    stdout.print(
        f"mgap demo: synthetic test split, {summaries[0].n_images} images, "
        f"{summaries[0].n_texts} captions",
        highlight=False,
    )
    table = _table("", ["metric", *(s.model for s in summaries)])
    rows: list[tuple[str, Callable[[DemoStore], float | None]]] = [
        ("gap L2M", lambda s: s.gap["l2m"]),
        ("RMG", lambda s: s.gap["rmg"]),
        ("mean paired cosine", lambda s: s.gap["mean_paired_cosine"]),
        ("i2t R@1", lambda s: s.retrieval["i2t"]["R@1"]),
        ("i2t R@5", lambda s: s.retrieval["i2t"]["R@5"]),
        ("t2i R@1", lambda s: s.retrieval["t2i"]["R@1"]),
        ("t2i R@5", lambda s: s.retrieval["t2i"]["R@5"]),
        *(
            (f"zero-shot {key}", lambda s, key=key: s.zero_shot[key])
            for key in summaries[0].zero_shot
        ),
        ("object bias (image)", lambda s: s.object_bias.get("image")),
        ("object bias (text)", lambda s: s.object_bias.get("text")),
    ]
    for label, get in rows:
        table.add_row(label, *(fmt(get(s)) for s in summaries))
    stdout.print(table)
    for s in summaries:
        stdout.print(f"store {s.store}", highlight=False)


def demo_cmd(
    no_tui: bool = typer.Option(False, "--no-tui", help="Print the summary only."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document; implies --no-tui."),
    store_dir: Path | None = typer.Option(None, "--store-dir", help="Where the stores go."),
    retrain: bool = typer.Option(False, "--retrain", help="Retrain toy:demo and re-extract."),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny budget (toy:demo-quick, 100 test images) for smoke tests."
    ),
) -> None:
    """The offline end-to-end demo: synthetic data, a toy CLIP trained here, two stores, TUI."""
    from mgap.config import load_config
    from mgap.engine.toy.demo import demo_report, run_demo

    run = run_demo(
        Path(store_dir or load_config().store_dir),
        quick=quick,
        retrain=retrain,
        log=note,
        train_log=None if json_out else note,
    )
    report = demo_report(run)
    if json_out:
        print_json(report.to_json())
        return
    _print_demo(report)
    if no_tui:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        note("not a terminal: skipping the TUI (run `mgap tui` to browse the stores)")
        return
    from mgap.tui.app import run_tui

    run_tui(run.store_dir, select=run.tui_selection)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
    app.command("train-toy")(train_toy_cmd)
    app.command("object-bias")(object_bias_cmd)
