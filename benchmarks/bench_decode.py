"""Decode + preprocess per worker: mgap's decode paths vs the model's own transform.

One process, one thread: what one DataLoader worker does per image. The baseline is what
every peer script runs, `preprocess(Image.open(path).convert("RGB"))` with the model's own
torchvision transform. mgap's default (`--decode tensor`) runs the worker's own code,
`mgap.engine.decode.tensor_inputs`, on the same bytes; `--decode draft` (PIL JPEG draft,
opt-in) is measured too. The fidelity check embeds every image each way and reports the
minimum cosine to the baseline: a path is on by default only if it stays >= 0.999.

    python benchmarks/bench_decode.py [--data-root ../shared/data/tiny_coco] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from _harness import measure, report
from PIL import Image

from mgap.engine.datasets import load_manifest
from mgap.engine.decode import Encoded, TensorTransform, draft_target, open_rgb, tensor_inputs
from mgap.engine.models import load_model


def own_transform(blobs: list[bytes], preprocess) -> list[torch.Tensor]:
    return [preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs]


def draft(blobs: list[bytes], preprocess, size: int) -> list[torch.Tensor]:
    return [preprocess(open_rgb(b, size)) for b in blobs]


def tensor_path(blobs: list[bytes], transform: TensorTransform) -> list[torch.Tensor]:
    """mgap's default worker path: decode_jpeg + tensor resize/crop/normalise."""
    return [tensor_inputs(Encoded(b), [transform])[0] for b in blobs]


def cosines(model, a: list[torch.Tensor], b: list[torch.Tensor] | torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        x = model.encode_images(torch.stack(a)).float()
        y = model.encode_images(b if isinstance(b, torch.Tensor) else torch.stack(b)).float()
    return torch.nn.functional.cosine_similarity(x, y).numpy()


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=str(here.parent / "shared" / "data" / "tiny_coco"))
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["open_clip:ViT-B-32@random", "open_clip:ViT-B-16@random", "open_clip:RN50@random"],
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = load_manifest("coco", args.data_root, args.split)
    blobs = [manifest.image_bytes(i) for i in range(len(manifest.records))]
    sizes = [Image.open(io.BytesIO(b)).size for b in blobs]
    print(
        f"{len(blobs)} COCO JPEGs, short side {min(min(s) for s in sizes)}-"
        f"{max(min(s) for s in sizes)} px; one process, one thread (a shared, loaded machine)"
    )
    for spec in args.models:
        model = load_model(spec, "cpu")
        preprocess = model.image_preprocess()
        size = draft_target([preprocess])
        transform = TensorTransform.from_preprocess(preprocess)
        ours = measure(lambda t=transform: tensor_path(blobs, t), repeats=args.repeats)
        theirs = measure(lambda p=preprocess: own_transform(blobs, p), repeats=args.repeats)
        drafted = measure(lambda p=preprocess, s=size: draft(blobs, p, s), repeats=args.repeats)
        ratio = report(f"{spec} decode+preprocess, {len(blobs)} images", ours, theirs)
        n = len(blobs)
        print(
            f"  images/s per worker: mgap tensor (default) {n / ours.median:.0f} · "
            f"own transform {n / theirs.median:.0f} · ratio {ratio:.2f}× · "
            f"draft (opt-in) {n / drafted.median:.0f} ({theirs.median / drafted.median:.2f}×)"
        )
        for name, timing in (("tensor", ours), ("draft", drafted)):
            cos = cosines(model, theirs.value, timing.value)
            print(f"  cosine {name} vs own transform: min {cos.min():.5f} · mean {cos.mean():.5f}")


if __name__ == "__main__":
    main()
