"""`mgap extract`: the headless extraction job (docs/design.md §6)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.extract_report import Reporter, print_summary
from mgap.core.errors import UsageError
from mgap.store import schema as S

if TYPE_CHECKING:
    from mgap.engine.extract.request import CheckedRequest
    from mgap.engine.reports.pipeline import ExtractedStore


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


def extract(
    model: list[str] | None = typer.Option(
        None,
        "--model",
        "-m",
        help="FAMILY:ID[@TAG]; repeat for several models in one pass. A pattern "
        "(open_clip:ViT-B-32@*) takes every catalog model it matches; a file glob in the tag "
        "(open_clip:ViT-B-32@/runs/exp1/checkpoints/epoch_*.pt) one store per checkpoint.",
    ),
    models_file: Path | None = typer.Option(
        None,
        "--models",
        help="A file of model specs, one a line (patterns allowed; blank lines and # comments skipped).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved model list and its count, and stop."
    ),
    dataset: str = typer.Option(
        ...,
        "--dataset",
        "-d",
        help="coco|flickr30k|nocaps|csv|jsonl|imagefolder|synthetic|webdataset",
    ),
    data_root: Path | None = typer.Option(
        None,
        "--data-root",
        help="Dataset folder, the CSV/JSONL file, or WebDataset shards: 'DIR/shard-{00000..00099}.tar' or a list file.",
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
    store_dtype: str = typer.Option(
        "float16",
        "--store-dtype",
        "--dtype",
        help="dtype of the stored embeddings: float16 (default) or float32. The model "
        "computes in float32 on CPU and under autocast on CUDA either way. --dtype is its "
        "old name.",
    ),
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
        S.BLOCK_ROWS, "--block-rows", help="Rows per store write; a kill loses at most one block."
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
    decode: str = typer.Option(
        "auto",
        "--decode",
        help="auto|tensor|draft|exact|gpu: auto = tensor (decode_jpeg + uint8 resize/crop, "
        "cosine >= 0.999) where the model's transform allows, else exact (the model's own "
        "transform); draft = PIL JPEG draft (opt-in); gpu = nvJPEG on CUDA.",
    ),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        help="Start torchrun with N ranks on this node (one per GPU); see docs/large-stores.md.",
    ),
    layers: str | None = typer.Option(
        None,
        "--layers",
        help="Also store per-layer states: all, or a list like 0,4,8,-1 "
        "(negative counts from the last block); see docs/depth.md.",
    ),
    layer_space: str | None = typer.Option(
        None, "--layer-space", help="raw|lens|both (default both where the tower has a lens)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Embed a dataset with one or more models into resumable HDF5 stores."""
    from mgap.commands.extract_zoo import announce, check_weights, resolve_models
    from mgap.engine.extract.request import ExtractRequest, check_request

    models = resolve_models(model, models_file)
    announce(models, dry_run=dry_run, json_out=json_out, quiet=quiet)
    if dry_run:
        return
    if store_dir is None and out is None:
        from mgap.config import load_config

        store_dir = load_config().store_dir
    request = ExtractRequest(
        models=models.resolved,
        dataset=dataset,
        data_root=data_root,
        split=split,
        limit=limit,
        dataset_options=parse_options(option, "--option"),
        model_options=parse_options(
            [o for o in model_option or [] if "::" not in o], "--model-option"
        ),
        per_model_options=models.scoped(per_model_options(model_option)),
        batch_size=batch_size,
        device=device,
        store_dtype=store_dtype,
        store_dir=store_dir,
        out=out,
        resume=resume,
        overwrite=overwrite,
        wait=wait,
        num_workers=workers,
        block_rows=block_rows,
        command=shlex.join(["mgap", *sys.argv[1:]]),
        decode=decode,
        perturbations=perturb or [],
        perturb_suites=perturb_suite or [],
        perturb_seed=perturb_seed,
        layers=layers,
        layer_space=layer_space,
    )
    checked = check_request(request)  # every option, before torch is imported
    check_weights(models)  # the whole list, before any model loads
    if nproc is not None:
        from mgap.commands.extract_launch import launch
        from mgap.engine.extract.layer_plan import refuse_distributed_layers

        refuse_distributed_layers(checked.layers)

        raise typer.Exit(launch(nproc, sys.argv[1:]))
    _run(checked, json_out, quiet)


def _run(checked: CheckedRequest, json_out: bool, quiet: bool) -> None:
    """Run the checked request with a progress bar on the main rank; exit 1 if cancelled."""
    from mgap.engine.extract.distributed import detect
    from mgap.engine.extract.run import run_extraction

    main_rank = detect().is_main
    reporter = Reporter(quiet or not main_rank)
    try:
        summaries = run_extraction(checked, reporter)
    finally:
        reporter.close()
    if main_rank:
        _drop_leftover_ranks(summaries, quiet)
    if main_rank and print_summary(summaries, json_out, quiet) == "cancelled":
        raise typer.Exit(1)


def _drop_leftover_ranks(summaries: list[ExtractedStore], quiet: bool) -> None:
    """The rank stores a kill or a one-process rerun left beside a store that is now
    complete go (store/merge.py): a second full copy of its embeddings."""
    from mgap.output import note
    from mgap.store.merge import drop_leftover_ranks

    for summary in summaries:
        if summary.status != S.STATUS_COMPLETE:
            continue
        freed = drop_leftover_ranks(summary.store)
        if freed is not None and not quiet:
            note(
                f"removed {summary.store}.ranks ({freed / 1e6:.1f} MB), left by an earlier --nproc run"
            )


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
