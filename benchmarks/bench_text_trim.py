"""Text encoding with trimmed token batches vs open_clip's full 77-token `encode_text`.

Same model (open_clip ViT-B-32@random), same captions (all captions of ../shared tiny_coco),
same batch size, in one process; asserts identical embeddings and prints the speed-up.

    python benchmarks/bench_text_trim.py [--batch 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mgap.engine.models import load_model

CAPTIONS = (
    Path(__file__).resolve().parents[2]
    / "shared/data/tiny_coco/annotations/captions_train2017.json"
)


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    captions = [a["caption"] for a in json.loads(CAPTIONS.read_text())["annotations"]]
    model = load_model("open_clip:ViT-B-32@random")
    batches = [captions[i : i + args.batch] for i in range(0, len(captions), args.batch)]

    def ours() -> torch.Tensor:
        return torch.cat([model.encode_texts(b) for b in batches])

    def baseline() -> torch.Tensor:
        return torch.cat([model.model.encode_text(model.tokenizer(b)).float() for b in batches])

    with torch.inference_mode():
        ours()  # warm-up
        t_base, ref = timed(baseline, args.repeats)
        t_ours, got = timed(ours, args.repeats)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    longest = max(int(model.tokenizer(b).argmax(-1).max()) + 1 for b in batches)
    print(f"captions: {len(captions)}, batch {args.batch}, threads {torch.get_num_threads()}")
    print(f"longest trimmed batch: {longest} of 77 tokens")
    print(f"full 77-token encode_text: {t_base:.3f} s ({len(captions) / t_base:.0f} captions/s)")
    print(f"mgap trimmed encode_texts: {t_ours:.3f} s ({len(captions) / t_ours:.0f} captions/s)")
    print(f"speed-up: {t_base / t_ours:.2f}x, max |diff| {float((got - ref).abs().max()):.2e}")


if __name__ == "__main__":
    main()
