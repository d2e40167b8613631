"""`mgap extract`: the headless extraction job (DESIGN.md §6)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import typer

from mgap.errors import UsageError
from mgap.output import note, print_json


def parse_options(items: list[str] | None, flag: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(
                f"{flag} {item!r} is not KEY=VALUE", hint=f"write {flag} caption_detail=0.5"
            )
        options[key.strip()] = value.strip()
    return options


def per_model_options(items: list[str] | None) -> dict[str, dict[str, str]]:
    """`SPEC::KEY=VALUE` options that apply to one model of a multi-model pass."""
    scoped: dict[str, dict[str, str]] = {}
    for item in items or []:
        spec, sep, option = item.rpartition("::")
        if sep:
            scoped.setdefault(spec, {}).update(parse_options([option], "--model-option"))
    return scoped


class _Reporter:
    """A rich bar on a terminal, a plain line every few seconds otherwise (logs, the TUI)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.tasks: dict[str, Any] = {}
        self.last_line = 0.0

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if self.quiet:
            return
        if event == "start":
            note(
                f"mgap extract: {data['dataset']}/{data['split']}, {data['n_images']} images, "
                f"{len(data['models'])} model(s), device {data['device']}"
            )
        elif event == "note":
            note(f"mgap extract: {data['message']}")
        elif event == "progress":
            self._progress(data)

    def _progress(self, d: dict[str, Any]) -> None:
        key = str(d["model"])
        phase = d.get("phase", "")
        if phase == "texts":
            done, total = d["texts_done"], d["n_texts"]
        else:
            done, total = d.get("rows_seen", d["images_done"]), d["n_images"]
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self.bar is None:
                self.bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[rate]}"),
                    TimeRemainingColumn(),
                    transient=False,
                    console=None,
                )
                self.bar.start()
            task = self.tasks.get(key + phase)
            desc = f"{key} {phase}"
            rate = f"{d['images_per_s']:.1f} img/s" if d.get("images_per_s") else ""
            if task is None:
                task = self.tasks[key + phase] = self.bar.add_task(desc, total=total, rate=rate)
            self.bar.update(task, completed=done, rate=rate)
            if phase == "done":
                self.bar.stop()
            return
        now = time.time()
        if phase == "done" or now - self.last_line > 5 or done == total:
            self.last_line = now
            rate = f", {d['images_per_s']:.1f} img/s" if d.get("images_per_s") else ""
            note(f"mgap extract: {key} {phase} {done}/{total}{rate}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def extract(
    model: list[str] = typer.Option(
        ..., "--model", "-m", help="FAMILY:ID[@TAG]; repeat for several models in one pass."
    ),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="coco|flickr30k|nocaps|csv|jsonl|imagefolder|synthetic"
    ),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Dataset folder (or the CSV/JSONL file)."
    ),
    split: str | None = typer.Option(None, "--split", help="Split name, e.g. val2017."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N images."),
    option: list[str] | None = typer.Option(
        None, "--option", "-o", help="Dataset option KEY=VALUE (repeatable)."
    ),
    model_option: list[str] | None = typer.Option(
        None,
        "--model-option",
        help="Model option KEY=VALUE for every model, or SPEC::KEY=VALUE for one (e.g. vision:facebook/dinov2-base::pool=mean).",
    ),
    batch_size: int = typer.Option(64, "--batch-size", "-b"),
    device: str = typer.Option("auto", "--device", help="auto|cpu|cuda[:i]"),
    dtype: str = typer.Option("float16", "--dtype", help="Storage dtype: float16|float32."),
    store_dir: Path | None = typer.Option(
        None, "--store-dir", help="Default: $MGAP_STORE_DIR or ./mgap-stores."
    ),
    out: Path | None = typer.Option(None, "--out", help="Store file (one model only)."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue a partial store (default)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    wait: bool = typer.Option(
        False, "--wait", help="If another process writes the store, wait for it instead of failing."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Decoding worker processes (default min(4, cores))."
    ),
    block_rows: int = typer.Option(
        256, "--block-rows", help="Rows per store write; a kill loses at most one block."
    ),
    perturb: list[str] | None = typer.Option(
        None,
        "--perturb",
        help="Also store a perturbed image side: noise:STD, blur:KERNEL or occlude:PIXELS "
        "(repeatable).",
    ),
    perturb_suite: list[str] | None = typer.Option(
        None, "--perturb-suite", help="A named set of --perturb settings: rtml (eight settings)."
    ),
    perturb_seed: int = typer.Option(
        0, "--perturb-seed", help="Seed of the noise and occlusion positions."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Embed a dataset with one or more models into resumable HDF5 stores."""
    if dtype not in ("float16", "float32"):
        raise UsageError(f"--dtype must be float16 or float32, got {dtype!r}")
    if block_rows < 1:
        raise UsageError(f"--block-rows must be at least 1, got {block_rows}")
    if store_dir is not None and out is not None:
        raise UsageError("--store-dir and --out exclude each other", hint="give one of them")
    # fail fast on bad specs and datasets, before torch is imported
    from mgap.engine.datasets import load_manifest
    from mgap.engine.perturb import perturbation_names
    from mgap.engine.specs import parse_model_spec

    for spec in model:
        parse_model_spec(spec)
    perturbations = perturbation_names(perturb or [], perturb_suite or [])
    dataset_options = parse_options(option, "--option")
    manifest = load_manifest(dataset, data_root, split, limit, **dataset_options)

    from mgap.engine.extract import ExtractRequest, run_extraction

    if store_dir is None and out is None:
        from mgap.config import load_config

        store_dir = load_config().store_dir
    request = ExtractRequest(
        models=model,
        dataset=dataset,
        data_root=data_root,
        split=split,
        limit=limit,
        dataset_options=dataset_options,
        model_options=parse_options(
            [o for o in model_option or [] if "::" not in o], "--model-option"
        ),
        per_model_options=per_model_options(model_option),
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        store_dir=store_dir,
        out=out,
        resume=resume,
        overwrite=overwrite,
        wait=wait,
        num_workers=workers,
        block_rows=block_rows,
        quiet=quiet,
        command=shlex.join(["mgap", *sys.argv[1:]]),
        manifest=manifest,
        perturbations=perturbations,
        perturb_seed=perturb_seed,
    )
    reporter = _Reporter(quiet)
    try:
        summaries = run_extraction(request, reporter)
    finally:
        reporter.close()
    status = "complete" if all(s.status == "complete" for s in summaries) else summaries[0].status
    if json_out:
        print_json({"status": status, "stores": [s.to_dict() for s in summaries]})
    elif not quiet:
        for s in summaries:
            extra = f" ({s.note})" if s.note else ""
            note(
                f"{s.status}: {s.store}: {s.n_images} images, {s.n_texts} texts, {s.skipped} skipped, "
                f"{s.images_per_s:.1f} img/s on {s.device}{extra}"
            )
    if status == "cancelled":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
