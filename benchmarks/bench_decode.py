"""Decode + preprocess per worker: mgap's decode paths vs the model's own transform.

One process, one thread: what one DataLoader worker does per batch of 64, from the image
files to the batch it hands over. The baseline is what CLIP_benchmark's dataset and
collate run, `preprocess(Image.open(path).convert("RGB"))` with the model's own
torchvision transform (Resize, CenterCrop, ToTensor, Normalize), then `torch.stack`.
mgap's default (`--decode tensor`) runs its worker's own code: `ImageItems.__getitems__`
(the batch's files read ahead on the reader thread; decode_jpeg, uint8 resize and crop)
and `collate_items`, then `TensorTransform.normalise` on the batch. On a GPU that last step
runs on the device; here it is timed on this CPU thread, so mgap's headline side carries
all of its work, and the worker's share is printed beside it. The previous layout (float
conversion and Normalize per image in the worker) and `--decode draft` (PIL JPEG draft,
opt-in) are timed too, all in turn after one warm-up run, by the wall clock and by this
process's CPU time (the work itself, whatever the load). Each side returns its batches;
joining them for the fidelity check is outside the timing (a worker never joins batches).
The fidelity check embeds every image each way and reports the minimum cosine to the
baseline: a path is on by default only if it stays >= 0.999.

    python benchmarks/bench_decode.py [--data-root ../shared/data/tiny_coco] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from _harness import measure_interleaved, report
from PIL import Image

from mgap.engine.datasets import load_manifest
from mgap.engine.extract.decode import TensorTransform, decode_jpegs, draft_target
from mgap.engine.extract.loader import ImageItems, collate_items
from mgap.engine.models import load_model

BATCH = 64  # CLIP_benchmark's default batch size


def batches(n: int) -> list[range]:
    return [range(i, min(i + BATCH, n)) for i in range(0, n, BATCH)]


def own_transform(manifest, preprocess) -> list[torch.Tensor]:
    """CLIP_benchmark's worker: open the file with PIL, the model's transform, stack."""
    root = Path(manifest.root)
    out = []
    for rows in batches(len(manifest.records)):
        images = [Image.open(root / manifest.records[i].path).convert("RGB") for i in rows]
        out.append(torch.stack([preprocess(image) for image in images]))
    return out


def tensor_path(manifest, preprocess, normalise: bool = True) -> list[torch.Tensor]:
    """mgap's default: the worker's batch of uint8 crops, then the per-batch normalise
    (`normalise=False`: the worker's share alone, when that step runs on a GPU)."""
    transform = TensorTransform.from_preprocess(preprocess)
    items = ImageItems(
        manifest, [preprocess], 0, decode_mode="tensor", tensor_transforms=[transform]
    )
    out = []
    for rows in batches(len(manifest.records)):
        _, reasons, [[batch]] = collate_items(items.__getitems__(list(rows)))
        assert not any(reasons), reasons
        out.append(transform.normalise(batch) if normalise else batch)
    return out


def float_in_worker(manifest, transform: TensorTransform) -> list[torch.Tensor]:
    """The previous layout: each image converted to float and normalised in the worker."""
    out = []
    for rows in batches(len(manifest.records)):
        images = [decode_jpegs([manifest.image_bytes(i)], "cpu")[0] for i in rows]
        out.append(torch.stack([transform([image])[0] for image in images]))
    return out


def draft(manifest, preprocess, size: int) -> list[torch.Tensor]:
    out = []
    for rows in batches(len(manifest.records)):
        out.append(torch.stack([preprocess(manifest.load_image(i, size)) for i in rows]))
    return out


def cosines(model, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        x, y = model.encode_images(a).float(), model.encode_images(b).float()
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
    n = len(manifest.records)
    sizes = [Image.open(io.BytesIO(manifest.image_bytes(i))).size for i in range(n)]
    print(
        f"{n} COCO JPEGs, short side {min(min(s) for s in sizes)}-"
        f"{max(min(s) for s in sizes)} px, batches of {BATCH}; one process, one thread "
        "(a shared machine: load from other sessions)"
    )
    assert all(manifest.image_bytes(i)[:2] == b"\xff\xd8" for i in range(n))  # all JPEGs
    for spec in args.models:
        model = load_model(spec, "cpu")
        preprocess = model.image_preprocess()
        size = draft_target([preprocess])
        transform = TensorTransform.from_preprocess(preprocess)
        sides = [
            lambda p=preprocess: tensor_path(manifest, p),
            lambda p=preprocess: own_transform(manifest, p),
            lambda p=preprocess: tensor_path(manifest, p, normalise=False),
            lambda t=transform: float_in_worker(manifest, t),
            lambda p=preprocess, s=size: draft(manifest, p, s),
        ]
        for clock_name, clock in (("wall", time.perf_counter), ("CPU", time.process_time)):
            ours, theirs, worker, before, drafted = measure_interleaved(
                sides, repeats=args.repeats, warmup=1, clock=clock
            )
            ratio = report(
                f"{spec} decode+preprocess, {n} images, {clock_name} s",
                ours,
                theirs,
                "own transform",
            )
            print(
                f"  images/s per worker ({clock_name}): mgap tensor (default) "
                f"{n / ours.median:.0f} · own transform {n / theirs.median:.0f} · ratio "
                f"{ratio:.2f}× | worker share without the normalise (on a GPU it runs there) "
                f"{theirs.median / worker.median:.2f}× · float in the worker (previous) "
                f"{theirs.median / before.median:.2f}× · draft (opt-in) "
                f"{theirs.median / drafted.median:.2f}×"
            )
        for name, timing in (("tensor", ours), ("draft", drafted)):
            cos = cosines(model, torch.cat(theirs.value), torch.cat(timing.value))
            print(f"  cosine {name} vs own transform: min {cos.min():.5f} · mean {cos.mean():.5f}")


if __name__ == "__main__":
    main()
