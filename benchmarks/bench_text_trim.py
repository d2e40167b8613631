"""Text encoding with trimmed token batches vs open_clip's full 77-token `encode_text`.

Same model (open_clip ViT-B-32@random), same captions (all captions of ../shared tiny_coco),
same batch size, in one process; asserts identical embeddings and prints the speed-up.
Both sides: median of `--repeats` runs (benchmarks/_harness.py).

    python benchmarks/bench_text_trim.py [--batch 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _harness import measure, report

from mgap.engine.models import load_model

CAPTIONS = (
    Path(__file__).resolve().parents[2]
    / "shared/data/tiny_coco/annotations/captions_train2017.json"
)


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
        full = measure(baseline, args.repeats)
        trimmed = measure(ours, args.repeats)
    ref, got = full.value, trimmed.value
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    longest = max(int(model.tokenizer(b).argmax(-1).max()) + 1 for b in batches)
    print(f"captions: {len(captions)}, batch {args.batch}, threads {torch.get_num_threads()}")
    print(f"longest trimmed batch: {longest} of 77 tokens")
    report("trimmed encode_texts", trimmed, full, "open_clip 77-token encode_text")
    print(f"max |diff| {float((got - ref).abs().max()):.2e}")


if __name__ == "__main__":
    main()
