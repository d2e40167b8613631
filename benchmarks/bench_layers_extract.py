"""Per-layer extraction cost: `--layers all` against a plain extraction of the same images.

The issue's target: storing every hidden state of both towers of a ViT-B/32-shaped
open_clip model (13 image + 13 text states, raw and lens) costs at most 1.15x a plain
extraction. Both sides run in this process, alternated (`measure_interleaved`), with the
same repeats and statistic; a second pair times the forward passes alone (one image
batch and one caption batch through `encode_*` against `encode_*_layers`), which is
the part the layers add to besides the writes.

    python benchmarks/bench_layers_extract.py [--limit 32] [--repeats 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _extract import extract_once
from _harness import measure_interleaved, report
from PIL import Image
from torch.utils.data import default_collate

from mgap.engine.datasets import load_manifest
from mgap.engine.models import load_model


def _forward_pair(args, manifest):
    """(plain, with every layer) forward passes over one batch of images and captions."""
    model = load_model(args.model, args.device)
    preprocess = model.image_preprocess()
    records = manifest.records[: args.batch_size]
    images = default_collate(
        [preprocess(Image.open(Path(manifest.root) / r.path).convert("RGB")) for r in records]
    )
    captions = manifest.captions_and_rows()[0][: args.batch_size]
    every = {s: list(range(model.tower_layers(s).count)) for s in ("image", "text")}
    spaces = ("raw", "lens")

    def plain() -> None:
        with torch.inference_mode():
            model.encode_images(images)
            model.encode_texts(captions)

    def layered() -> None:
        with torch.inference_mode():
            model.encode_images_layers(images, every["image"], spaces)
            model.encode_texts_layers(captions, every["text"], spaces)

    return plain, layered, every


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=str(here.parent / "shared" / "data" / "tiny_coco"))
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--model", default="open_clip:ViT-B-32@random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    manifest = load_manifest("coco", args.data_root, args.split, args.limit)
    plain, layered, every = _forward_pair(args, manifest)  # also pays first-call costs
    n_captions = len(manifest.captions_and_rows()[0])
    print(
        f"{args.model} on {args.device}, {len(manifest.records)} COCO images and {n_captions} "
        f"captions, {args.workers} workers; layers: {len(every['image'])} image + "
        f"{len(every['text'])} text hidden states, raw and lens, store float16"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.h5"
        base, ours = measure_interleaved(
            [
                lambda: extract_once(args, manifest, out, layers=None),
                lambda: extract_once(args, manifest, out, layers="all"),
            ],
            repeats=args.repeats,
            warmup=1,
        )
    ratio = report("--layers all vs a plain extraction (end to end)", ours, base, "plain")
    print(f"--layers all costs {1 / ratio:.3f}x a plain extraction (target <= 1.15x)")
    base_fw, ours_fw = measure_interleaved([plain, layered], repeats=args.repeats, warmup=1)
    label = f"forward passes only ({args.batch_size} images + captions)"
    ratio = report(label, ours_fw, base_fw, "plain")
    print(f"per-layer forward passes cost {1 / ratio:.3f}x the plain ones")


if __name__ == "__main__":
    main()
