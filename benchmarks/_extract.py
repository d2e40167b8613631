"""One `mgap extract` of the COCO-layout benchmark inputs, in process: the side both
extraction benchmarks time (plain against `--perturb` or `--layers`)."""

from __future__ import annotations

from pathlib import Path

from mgap.engine.extract.request import ExtractRequest
from mgap.engine.extract.run import run_extraction


def extract_once(args, manifest, out: Path, **options) -> None:
    """Extract `args.model` over `args.data_root` into a fresh `out`, with `options`
    (e.g. `perturbations=`, `layers=`) added to the request."""
    out.unlink(missing_ok=True)
    request = ExtractRequest(
        models=[args.model],
        dataset="coco",
        data_root=args.data_root,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        out=out,
        num_workers=args.workers,
        manifest=manifest,
        **options,
    )
    run_extraction(request)
