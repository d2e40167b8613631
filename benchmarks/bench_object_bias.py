"""Object-bias class separation: class sums in O(n d) vs the plain n x n cosine matrix.

Run: python benchmarks/bench_object_bias.py
"""

from __future__ import annotations

import time

import numpy as np

from mgap.engine.analysis.object_bias import class_separation


def gram_separation(X: np.ndarray, labels: np.ndarray) -> float:
    """The textbook version: full cosine matrix, masks for same / different class."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = Xn @ Xn.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(X), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    rng = np.random.default_rng(0)
    for n, d, classes in ((2000, 64, 6), (8000, 64, 6), (8000, 512, 80)):
        X = rng.normal(size=(n, d))
        labels = rng.integers(0, classes, size=n)
        t_fast, fast = best_of(lambda X=X, labels=labels: class_separation(X, labels))
        t_gram, gram = best_of(lambda X=X, labels=labels: gram_separation(X, labels))
        assert abs(fast["separation"] - gram) < 1e-10, (fast["separation"], gram)
        print(
            f"n={n:5d} d={d:3d} C={classes:2d}: class sums {t_fast * 1e3:8.2f} ms, "
            f"n x n gram {t_gram * 1e3:9.2f} ms, ratio {t_gram / t_fast:6.1f}x"
        )


if __name__ == "__main__":
    main()
