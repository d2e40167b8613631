"""`mgap itm`: retrieval and zero-shot scored by ViLT's retrieval head, one forward pass per
(image, text) pair; the cost is printed before the model loads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.extract_cmd import parse_options
from mgap.commands.report_common import JSON_OPT, STORE_ARG, print_header, table
from mgap.output import fmt, note, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.studies import ItmReport

PROGRESS_EVERY_S = 2.0


def print_itm(report: ItmReport) -> None:
    print_header(report)
    stdout.print(f"{report.head}; {report.pairs:,} pairs; {report.ties}", highlight=False)
    if report.retrieval is not None:
        out = table(
            f"Retrieval by the ITM head ({report.n_images} images, {report.n_captions} captions)",
            ["direction", "n", "R@1", "R@5", "R@10"],
        )
        for side, r in (("i2t", report.retrieval.i2t), ("t2i", report.retrieval.t2i)):
            out.add_row(side, str(r.n), fmt(r.r1, 3), fmt(r.r5, 3), fmt(r.r10, 3))
        stdout.print(out)
    if report.zeroshot is not None:
        z = report.zeroshot
        stdout.print(
            f"zero-shot over {z.n_classes} classes ({z.template!r}), {z.n} images: "
            f"top-1 {fmt(z.top1, 3)}  top-5 {fmt(z.top5, 3)}  error {fmt(z.error, 3)}",
            highlight=False,
        )


def itm(
    store: Path = STORE_ARG,
    limit: int = typer.Option(
        100, "--limit", min=1, help="First N images (and their captions) scored."
    ),
    task: str = typer.Option("both", "--task", help="retrieval, zeroshot or both."),
    template: str = typer.Option("a photo of a {}.", "--template", help="Zero-shot prompt."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per forward batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:i]."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Image folder, when it moved since extraction."
    ),
    model_option: list[str] | None = typer.Option(
        None, "--model-option", help="Model option KEY=VALUE, as given to extract (repeatable)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """ViLT: retrieval R@k and zero-shot accuracy from its image-text retrieval head."""
    from mgap.engine.itm import ItmRequest, itm_report, plan
    from mgap.store import open_store

    request = ItmRequest(
        store=store,
        limit=limit,
        task=task,
        template=template,
        batch_size=batch_size,
        device=device,
        data_root=data_root,
        model_options=parse_options(model_option, "--model-option"),
    )
    note(f"mgap itm: cost {plan(open_store(store), request).describe()}")
    last = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        eta = seconds / done * (total - done)
        note(f"mgap itm: {done:,}/{total:,} pairs, {done / seconds:.0f}/s, ETA {eta:.0f} s")

    report = itm_report(request, progress)
    if as_json:
        print_json(report.to_json())
    else:
        print_itm(report)


def register(app: typer.Typer) -> None:
    app.command("itm")(itm)
