"""Time mgap's gap metrics and retrieval against plain implementations on the same data.

    python benchmarks/bench_gap_retrieval.py [--n 5000] [--per 5] [--d 768] [--skip-argsort]

Synthetic COCO-val-sized data: n images, `per` captions each (n*per captions), d dims, a
shared offset per modality (a cone and a gap) and noise chosen so recall is mid-range.

Retrieval: mgap counts, in blocked float32 products, the candidates that outscore the
right one. Baselines, given the same float32 score blocks: (a) a full argsort of every
query's scores, and (b) CLIP_benchmark's recall: top-k indices (argpartition + sort of the
k best) and a (captions x images) one-hot positive matrix gathered at those indices.
Recalls must be identical. Gap: intra-modal cosines from sums in O(n d) against the mean
of the off-diagonal Gram matrix (blocked, O(n^2 d)) on the image side. Finally the real
CLI: `mgap gap` and `mgap retrieval` on a store of the same data, wall time end to end.
Every comparison: median of `--repeats` runs on both sides (benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _harness import measure, report

from mgap.engine.compute.backend import resolve_backend
from mgap.engine.measures.gap import gap_metrics, intra_cosine
from mgap.engine.measures.retrieval import retrieval_metrics
from mgap.engine.measures.rows import unit_rows

KS = (1, 5, 10)


def synthetic(n: int, per: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32) + 0.6
    index = np.repeat(np.arange(n), per)
    Y = X[index] + 7.0 * rng.standard_normal((n * per, d), dtype=np.float32)
    Y[:, : d // 8] += 1.5  # the modality gap lives in a few dims
    return X, Y, index


def score_blocks(X, Y):
    """The same float32 score blocks mgap computes: (images x captions), one block at a time."""
    Xn, Yn = unit_rows(X, np.float32), unit_rows(Y, np.float32)
    YnT = np.ascontiguousarray(Yn.T)
    block = resolve_backend("cpu").block_rows(len(Yn))
    return np.vstack([Xn[lo : lo + block] @ YnT for lo in range(0, len(Xn), block)])


def argsort_recall(X, Y, index, chunk=1000):
    """Full argsort of every query's scores; rank = position of the first right candidate."""
    S = score_blocks(X, Y)
    n, m = S.shape
    t2i_rank = np.empty(m, dtype=np.int64)
    for lo in range(0, m, chunk):
        order = np.argsort(-S[:, lo : lo + chunk].T, axis=1, kind="stable")
        t2i_rank[lo : lo + chunk] = np.argmax(order == index[lo : lo + chunk, None], axis=1) + 1
    i2t_rank = np.empty(n, dtype=np.int64)
    for lo in range(0, n, chunk):
        order = np.argsort(-S[lo : lo + chunk], axis=1, kind="stable")
        right = index[order] == np.arange(lo, min(lo + chunk, n))[:, None]
        i2t_rank[lo : lo + chunk] = np.argmax(right, axis=1) + 1
    return {
        "i2t": {f"R@{k}": float(np.mean(i2t_rank <= k)) for k in KS},
        "t2i": {f"R@{k}": float(np.mean(t2i_rank <= k)) for k in KS},
    }


def topk_onehot_recall(X, Y, index):
    """CLIP_benchmark's dataset-level recall: top-k indices, one-hot positives, any() hit."""
    S = score_blocks(X, Y)
    n, m = S.shape
    positive = np.zeros((m, n), dtype=bool)
    positive[np.arange(m), index] = True
    kmax = max(KS)
    out = {"i2t": {}, "t2i": {}}
    for name, scores, pos in (("t2i", S.T, positive), ("i2t", S, positive.T)):
        top = np.argpartition(-scores, kmax, axis=1)[:, :kmax]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
        hits = np.take_along_axis(pos, top, axis=1)
        for k in KS:
            out[name][f"R@{k}"] = float(hits[:, :k].any(axis=1).mean())
    return out


def gram_intra_cosine(X, block=1024):
    """Mean off-diagonal cosine from the Gram matrix, blocked (the O(n^2 d) way)."""
    Xn = unit_rows(X)
    total = 0.0
    for lo in range(0, len(Xn), block):
        total += float((Xn[lo : lo + block] @ Xn.T).sum())
    n = len(Xn)
    return (total - n) / (n * (n - 1))


def recalls(doc):
    return {side: {k: doc[side][k] for k in ("R@1", "R@5", "R@10")} for side in ("i2t", "t2i")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--per", type=int, default=5)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3, help="Runs per side (median).")
    parser.add_argument("--skip-argsort", action="store_true", help="Skip the slowest baseline.")
    args = parser.parse_args()
    X, Y, index = synthetic(args.n, args.per, args.d)
    print(
        f"data: {args.n} images x {len(Y)} captions, d={args.d}, cpus={os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}, {args.repeats} runs per side"
    )
    r = args.repeats
    mine = measure(lambda: retrieval_metrics(X, Y, index), r)
    print(f"recalls: {recalls(mine.value)}")
    topk = measure(lambda: topk_onehot_recall(X, Y, index), r)
    assert topk.value == recalls(mine.value), (topk.value, recalls(mine.value))
    report("retrieval", mine, topk, "CLIP_benchmark top-k + one-hot")
    if not args.skip_argsort:
        full = measure(lambda: argsort_recall(X, Y, index), r)
        assert full.value == recalls(mine.value), (full.value, recalls(mine.value))
        report("retrieval", mine, full, "full argsort")

    gap = measure(lambda: gap_metrics(X, Y, index), r)
    print(f"mgap gap_metrics (no separability) {gap.median:.3f} s ({gap.spread})")
    print(f"  L2M {gap.value['l2m']:.4f} RMG {gap.value['rmg']:.4f}")
    Xn = unit_rows(X)
    sums = measure(lambda: intra_cosine(Xn), r)
    gram = measure(lambda: gram_intra_cosine(X), r)
    assert abs(sums.value - gram.value) < 1e-9, (sums.value, gram.value)
    report("intra-image cosine", sums, gram, "off-diagonal Gram mean")
    sep = measure(lambda: gap_metrics(X, Y, index, separability=True), 1)
    print(
        f"mgap gap_metrics with separability {sep.median:.2f} s  "
        f"accuracy {sep.value['separability']['accuracy']:.3f}"
    )

    from mgap.store.build import store_from_arrays

    with tempfile.TemporaryDirectory() as tmp:
        path = store_from_arrays(
            Path(tmp) / "bench.h5",
            image_embeddings=X,
            text_embeddings=Y,
            caption_image_row=index,
            dtype="float16",
        )
        for command in (["gap"], ["retrieval"]):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "mgap", *command, str(path), "--json"],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr
            print(f"CLI mgap {command[0]:<10} --json  {time.perf_counter() - start:7.2f} s wall")


if __name__ == "__main__":
    main()
