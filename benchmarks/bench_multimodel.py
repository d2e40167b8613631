"""Several models in one pass vs one `mgap extract` run per model, same process, same data.

One pass decodes each image once and feeds every image tower; separate runs decode the
dataset once per model. The stores must be identical either way.

    python benchmarks/bench_multimodel.py [--model A --model B ...] [--device cpu] [--repeats 1]

Both sides: median of `--repeats` runs, each into a fresh folder (benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
from _harness import measure, report

from mgap.engine.extract.request import ExtractRequest
from mgap.engine.extract.run import run_extraction
from mgap.engine.models import load_model, resolve_device
from mgap.store import open_store


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=str(here.parent / "shared" / "data" / "tiny_coco"))
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--model", action="append")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    models = args.model or ["open_clip:ViT-S-32@random", "open_clip:ViT-S-32-alt@random"]
    device = resolve_device(args.device)
    for spec in models:  # warm-up: weights and first-call costs are paid before timing
        load_model(spec, device)

    def request(out_dir: Path, specs: list[str]) -> ExtractRequest:
        return ExtractRequest(
            models=specs,
            dataset="coco",
            data_root=args.data_root,
            split=args.split,
            batch_size=args.batch_size,
            device=device,
            store_dir=out_dir,
        )

    with tempfile.TemporaryDirectory() as tmp:
        runs = itertools.count()

        def separate_runs() -> Path:
            out = Path(tmp) / f"separate{next(runs)}"
            for spec in models:
                run_extraction(request(out, [spec]))
            return out

        def one_pass():
            return run_extraction(request(Path(tmp) / f"one{next(runs)}", models))

        separate = measure(separate_runs, args.repeats)
        one = measure(one_pass, args.repeats)
        sep_dir, summaries = separate.value, one.value
        for s in summaries:
            a = open_store(s.store).image_embeddings()
            b = open_store(sep_dir / Path(s.store).name).image_embeddings()
            np.testing.assert_allclose(a, b, atol=2e-3)
        n = summaries[0].n_images
    print(f"device {device}, {len(models)} models ({', '.join(models)}), {n} images")
    report("one pass for every model", one, separate, "one run per model")


if __name__ == "__main__":
    main()
