"""`mgap extract` against CLIP_benchmark's defaults, end to end, same images, same process.

The baseline transcribes CLIP_benchmark's retrieval path (`clip_benchmark/cli.py` defaults
and `metrics/zeroshot_retrieval.py::evaluate`): a DataLoader with batch size 64 and 4
workers over (model-preprocessed image, captions) pairs, `open_clip.get_tokenizer` padding
every caption to the full context, `encode_image`/`encode_text` under
`torch.cuda.amp.autocast` (AMP on CUDA, a no-op on CPU) and `no_grad`, embeddings
normalised and kept in memory. mgap runs `run_extraction` with the same batch size and
workers, its default decode path, inference mode, trimmed text batches, and writes the
HDF5 store. Two mgap figures: the same work as the baseline, and mgap's full store,
which also embeds the zero-shot class prompts (every COCO category x the photo templates,
work the baseline never does). Both sides load the model inside the timed call, and all
are timed by `_harness.measure_interleaved` with the same repeats, in turn (mgap, mgap
full, baseline, mgap, ...), so a change of load from other processes falls on each alike.
mgap's image pass is also given on its own (the job's rate from its DataLoader's start to
its last batch), and on CUDA each side's mean GPU utilisation (`nvidia-smi`, every 100 ms).

    python benchmarks/bench_extract.py [--data-root ../shared/data/tiny_coco] [--device cpu]
    python benchmarks/bench_extract.py --decode exact   # mgap on the model's own transform
    python benchmarks/coco_copies.py /tmp/coco5k --images 5000   # a GPU needs more images
    python benchmarks/bench_extract.py --data-root /tmp/coco5k --device cuda --decode gpu --workers 8
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import numpy as np
import torch
from _harness import measure_interleaved, report
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mgap.engine.datasets import load_manifest
from mgap.engine.extract.job import ExtractJob
from mgap.engine.extract.request import ExtractRequest, check_request
from mgap.engine.models import resolve_device
from mgap.store import open_store


class CaptionsDataset(Dataset):
    """CLIP_benchmark's COCO captions dataset: (transform(image), list of captions)."""

    def __init__(self, manifest, transform) -> None:
        self.manifest, self.transform = manifest, transform

    def __len__(self) -> int:
        return len(self.manifest.records)

    def __getitem__(self, i: int):
        record = self.manifest.records[i]
        image = Image.open(Path(self.manifest.root) / record.path).convert("RGB")
        return self.transform(image), record.captions


def image_captions_collate_fn(batch):
    """CLIP_benchmark's collate: stacked images, the list of caption lists."""
    transposed = list(zip(*batch, strict=True))
    return torch.stack(transposed[0]), transposed[1]


def clip_benchmark_defaults(arch: str, manifest, device: str, batch_size: int, workers: int):
    import open_clip

    torch.manual_seed(0)  # the weights mgap's `@random` builds, so outputs can be compared
    model, _, transform = open_clip.create_model_and_transforms(arch, device=device)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    loader = DataLoader(
        CaptionsDataset(manifest, transform),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=image_captions_collate_fn,
    )
    amp = device.startswith("cuda")
    autocast = torch.cuda.amp.autocast if amp else suppress
    images, texts = [], []
    for batch_images, batch_texts in loader:
        batch_images = batch_images.to(device)
        tokens = tokenizer([t for texts_ in batch_texts for t in texts_]).to(device)
        with torch.no_grad(), autocast():
            x = torch.nn.functional.normalize(model.encode_image(batch_images), dim=-1)
            y = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
        images.append(x.float().cpu())
        texts.append(y.float().cpu())
    if amp:
        torch.cuda.synchronize()
    return torch.cat(images).numpy(), torch.cat(texts).numpy()


def mgap_extract(spec: str, args, device: str, out: Path, prompts: bool) -> float:
    """One `mgap extract`, returning its image pass's images/s; `prompts=False` skips the
    zero-shot class prompt embeddings, which the baseline does not compute (the
    like-for-like comparison)."""
    out.unlink(missing_ok=True)
    request = ExtractRequest(
        models=[spec],
        dataset="coco",
        data_root=args.data_root,
        split=args.split,
        batch_size=args.batch_size,
        device=device,
        out=out,
        num_workers=args.workers,
        overwrite=True,
        decode=args.decode,
    )
    [summary] = ExtractJob(check_request(request), None, with_prompts=prompts).run()
    return summary.images_per_s


class GpuUtilisation:
    """Mean GPU utilisation (%) of device 0 while a call runs, from `nvidia-smi` samples."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn, self.samples = fn, []

    def __call__(self) -> object:
        sampler = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
            + ["--id=0", "-lms", "100"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            return self.fn()
        finally:
            sampler.terminate()
            out, _ = sampler.communicate()
            self.samples += [float(v) for v in out.split() if v.strip().isdigit()]

    @property
    def mean(self) -> str:
        return f"{sum(self.samples) / len(self.samples):.0f}%" if self.samples else "n/a"


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=str(here.parent / "shared" / "data" / "tiny_coco"))
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (random init)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64, help="CLIP_benchmark's default")
    parser.add_argument("--workers", type=int, default=4, help="CLIP_benchmark's default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--decode", default="auto", help="mgap's decode path (exact: how much the default gains)"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    manifest = load_manifest("coco", args.data_root, args.split)
    n = len(manifest.records)
    n_texts = len(manifest.captions_and_rows()[0])
    spec = f"open_clip:{args.arch}@random"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.h5"
        sides = [
            lambda: mgap_extract(spec, args, device, out, False),
            lambda: mgap_extract(spec, args, device, Path(tmp) / "full.h5", True),
            lambda: clip_benchmark_defaults(
                args.arch, manifest, device, args.batch_size, args.workers
            ),
        ]
        if device.startswith("cuda") and shutil.which("nvidia-smi"):
            sides = [GpuUtilisation(side) for side in sides]
        ours, full, theirs = measure_interleaved(sides, repeats=args.repeats)
        store = open_store(out)
        x, y = store.image_embeddings(np.float32), store.text_embeddings(np.float32)
        decode = store.attrs.get("decode", "")
    x_ref, y_ref = theirs.value
    print(
        f"device {device}, {spec}, {n} images + {n_texts} captions, batch {args.batch_size}, "
        f"{args.workers} workers; a shared machine (load from other sessions)"
    )
    ratio = report("extract end to end, same work", ours, theirs, "CLIP_benchmark defaults")
    full_ratio = report(
        "mgap's full store (+ zero-shot class prompt embeddings)",
        full,
        theirs,
        "CLIP_benchmark defaults",
    )
    print(
        f"  images/s: mgap {n / ours.median:.1f} · CLIP_benchmark defaults "
        f"{n / theirs.median:.1f} · ratio {ratio:.2f}×"
    )
    print(f"  full store: mgap {n / full.median:.1f} images/s · ratio {full_ratio:.2f}×")
    print(f"  mgap's image pass alone (last run): {ours.value:.0f} images/s")
    if isinstance(sides[0], GpuUtilisation):
        print(
            f"  mean GPU utilisation: mgap {sides[0].mean} · full store {sides[1].mean} · "
            f"CLIP_benchmark defaults {sides[2].mean}"
        )
    print(f"  mgap decode path: {decode}")
    print(
        f"  min cosine to the baseline's embeddings: images {_min_cosine(x, x_ref):.5f}, "
        f"texts {_min_cosine(y, y_ref):.5f}"
    )


if __name__ == "__main__":
    main()
