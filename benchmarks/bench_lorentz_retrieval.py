"""Time mgap's Lorentz retrieval (negative geodesic distance) against MERU's own evaluation.

    python benchmarks/bench_lorentz_retrieval.py [--n 2000] [--per 5] [--d 512] [--repeats 3]

Synthetic MERU-like data: n images and n*per captions lifted onto the hyperboloid
(curvature -c) by the exp map at the origin, captions nearer the origin than images.

Baseline: MERU's `meru/evaluation/retrieval.py`, transcribed with torch on the CPU: queries
in chunks of 256, `pairwise_inner` scores against every candidate, a full descending
argsort, and recall@k from the sorted ids. mgap: blocked float32 products of [x, x_t] and
[y, -y_t], turned into -d in place, and counting instead of sorting. Both must give the same
recalls, up to a float32 tie at a cut-off (mgap splits it in expectation, argsort picks one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import measure, report  # noqa: E402

from mgap.engine.measures.hyperbolic import exp_map0  # noqa: E402
from mgap.engine.measures.retrieval import retrieval_metrics  # noqa: E402
from mgap.engine.measures.scores import LORENTZ_DISTANCE, Score  # noqa: E402

KS = (1, 5, 10)


def synthetic(n: int, per: int, d: int, c: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((n, d)) / np.sqrt(d) * 1.6
    index = np.repeat(np.arange(n), per)
    W = 0.6 * V[index] + 9.0 * rng.standard_normal((n * per, d)) / np.sqrt(d)
    return exp_map0(V, c).astype(np.float32), exp_map0(W, c).astype(np.float32), index


def meru_recall(X, Y, index, c: float) -> dict:
    """MERU's evaluation loop: pairwise Lorentzian inner products, argsort, recall@k."""
    import torch

    def pairwise_inner(x, y):
        x_time = torch.sqrt(1 / c + torch.sum(x**2, dim=-1, keepdim=True))
        y_time = torch.sqrt(1 / c + torch.sum(y**2, dim=-1, keepdim=True))
        return x @ y.T - x_time @ y_time.T

    images, texts = torch.from_numpy(X), torch.from_numpy(Y)
    image_ids, text_image = torch.arange(len(X)), torch.from_numpy(index)
    t2i_hits = {k: 0 for k in KS}
    for lo in range(0, len(texts), 256):
        order = pairwise_inner(texts[lo : lo + 256], images).argsort(dim=1, descending=True)
        right = image_ids[order] == text_image[lo : lo + 256, None]
        for k in KS:
            t2i_hits[k] += int(right[:, :k].any(dim=1).sum())
    i2t_hits = {k: 0 for k in KS}
    for lo in range(0, len(images), 256):
        order = pairwise_inner(images[lo : lo + 256], texts).argsort(dim=1, descending=True)
        right = text_image[order] == image_ids[lo : lo + 256, None]
        for k in KS:
            i2t_hits[k] += int(right[:, :k].any(dim=1).sum())
    return {
        "i2t": {f"R@{k}": i2t_hits[k] / len(images) for k in KS},
        "t2i": {f"R@{k}": t2i_hits[k] / len(texts) for k in KS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--per", type=int, default=5)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--c", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, Y, index = synthetic(args.n, args.per, args.d, args.c)
    print(f"{args.n} images, {len(Y)} captions, d {args.d}, curvature -{args.c}", flush=True)
    score = Score(LORENTZ_DISTANCE, args.c)
    ours = measure(lambda: retrieval_metrics(X, Y, index, score=score), repeats=args.repeats)
    theirs = measure(lambda: meru_recall(X, Y, index, args.c), repeats=args.repeats)
    for side, queries in (("i2t", len(X)), ("t2i", len(Y))):
        for k in KS:
            a, b = ours.value[side][f"R@{k}"], theirs.value[side][f"R@{k}"]
            # mgap splits a float32 tie at the cut-off in expectation, argsort picks one side:
            # they may differ by less than one query
            if abs(a - b) >= 1.0 / queries:
                raise SystemExit(f"recall differs: {side} R@{k} mgap {a} vs MERU {b}")
    print("recalls agree (within one tied query):", ours.value["i2t"], ours.value["t2i"])
    report("Lorentz retrieval", ours, theirs, "MERU eval (torch argsort)")


if __name__ == "__main__":
    main()
