"""Perturbation suite cost: one `--perturb-suite rtml` extraction against clean extractions.

The issue's target: the eight-setting suite (nine image sides with the clean one) costs at
most 1.3× one clean extraction per side. The baseline a user would otherwise run is one
extraction per setting over a perturbed copy of the dataset, i.e. nine clean-sized
extractions, each decoding every image and embedding every caption again; its cost is
nine times the measured clean extraction (the perturbation itself excluded, which favours
the baseline). Both sides are timed through `_harness.measure` with the same repeats.

    python benchmarks/bench_perturb_extract.py [--limit 24] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _extract import extract_once
from _harness import Timing, measure, report

from mgap.engine.datasets import load_manifest
from mgap.engine.extract.perturb import SUITES
from mgap.engine.models import load_model


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=str(here.parent / "shared" / "data" / "tiny_coco"))
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--model", default="open_clip:ViT-S-32@random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    manifest = load_manifest("coco", args.data_root, args.split, args.limit)
    suite = SUITES["rtml"]
    sides = 1 + len(suite)
    load_model(args.model, args.device)  # first-call costs paid before either side is timed
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.h5"
        clean = measure(
            lambda: extract_once(args, manifest, out, perturbations=()),
            repeats=args.repeats,
            warmup=1,
        )
        ours = measure(
            lambda: extract_once(args, manifest, out, perturbations=suite), repeats=args.repeats
        )
    baseline = Timing(seconds=[sides * s for s in clean.seconds])
    print(
        f"{args.model} on {args.device}, {len(manifest.records)} COCO images, "
        f"{args.workers} workers, suite rtml = {sides} image sides (clean + {len(suite)})"
    )
    print(f"one clean extraction: median {clean.median:.3f} s ({clean.spread})")
    report(f"rtml suite vs {sides} clean extractions", ours, baseline, f"{sides}x clean")
    per_side = ours.median / sides / clean.median
    print(f"suite cost per side: {per_side:.2f}x one clean extraction (target <= 1.3x)")
    marginal = (ours.median - clean.median) / len(suite)
    print(
        f"marginal cost per perturbed side: {marginal:.3f} s "
        f"({marginal / clean.median:.2f}x one clean extraction, whose model load, worker "
        "start-up and caption pass the suite pays once)"
    )


if __name__ == "__main__":
    main()
