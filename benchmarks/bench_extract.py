"""`mgap extract` against the peers' naive loop, same images, same model, same process.

The baseline is what the peer scripts do: PIL decoding and preprocessing on the main
thread, batch 8, fp32, every caption padded to the full context. mgap decodes in worker
processes, uses bigger batches, `inference_mode`, trims causal text batches, autocasts on
CUDA and writes float16 blocks to HDF5. Both embed every image and every caption.

    python benchmarks/bench_extract.py [--data-root ../shared/data/tiny_coco] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mgap.engine.datasets import load_manifest
from mgap.engine.extract import ExtractRequest, run_extraction
from mgap.engine.models import load_model, resolve_device
from mgap.store import open_store


def naive_loop(spec: str, manifest, device: str) -> tuple[np.ndarray, np.ndarray]:
    model = load_model(spec, device)
    net = model.model  # the open_clip module
    preprocess = model.image_preprocess()
    images, texts = [], []
    records = manifest.records
    with torch.no_grad():
        for i in range(0, len(records), 8):
            batch = torch.stack(
                [preprocess(manifest.load_image(j)) for j in range(i, min(i + 8, len(records)))]
            )
            images.append(net.encode_image(batch.to(device)).float().cpu().numpy())
        captions, _ = manifest.captions_and_rows()
        for i in range(0, len(captions), 8):
            tokens = model.tokenize(captions[i : i + 8]).to(device)  # padded to the full context
            texts.append(net.encode_text(tokens).float().cpu().numpy())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return np.concatenate(images), np.concatenate(texts)


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=str(here.parent / "shared" / "data" / "tiny_coco"))
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--model", default="open_clip:ViT-B-32@random")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="repeat the dataset N times (GPU)")
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding workers (default: mgap's)"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    manifest = load_manifest("coco", args.data_root, args.split)
    n = len(manifest.records)
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: model construction and first-call costs are paid by both runs
        load_model(args.model, device)
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            x_naive, y_naive = naive_loop(args.model, manifest, device)
        naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in range(args.repeat):
            request = ExtractRequest(
                models=[args.model],
                dataset="coco",
                data_root=args.data_root,
                split=args.split,
                batch_size=args.batch_size,
                device=device,
                out=Path(tmp) / f"s{r}.h5",
                num_workers=args.workers,
            )
            run_extraction(request)
        fast = time.perf_counter() - t0
        store = open_store(Path(tmp) / "s0.h5")
        x, y = store.image_embeddings(), store.text_embeddings()
    cos_x = np.sum(x * x_naive, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(x_naive, axis=1)
    cos_y = np.sum(y * y_naive, 1) / np.linalg.norm(y, axis=1) / np.linalg.norm(y_naive, axis=1)
    print(f"device {device}, model {args.model}, {n} images x {args.repeat}, {len(y)} captions")
    print(
        f"naive loop (PIL main thread, batch 8, fp32): {naive:.2f} s, {n * args.repeat / naive:.1f} images/s"
    )
    print(
        f"mgap extract (workers, batch {args.batch_size}, store writes): {fast:.2f} s, "
        f"{n * args.repeat / fast:.1f} images/s"
    )
    print(
        f"speed-up: {naive / fast:.2f}x; min cosine to the naive embeddings: "
        f"images {cos_x.min():.5f}, texts {cos_y.min():.5f}"
    )


if __name__ == "__main__":
    main()
