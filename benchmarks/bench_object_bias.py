"""Object-bias class separation: class sums in O(n d) vs the plain n x n cosine matrix.

Run: python benchmarks/bench_object_bias.py [--repeats 3]
Both sides: median of the same number of runs (benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import measure, report

from mgap.engine.measures.object_bias import class_separation


def gram_separation(X: np.ndarray, labels: np.ndarray) -> float:
    """The textbook version: full cosine matrix, masks for same / different class."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = Xn @ Xn.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(X), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n, d, classes in ((2000, 64, 6), (8000, 64, 6), (8000, 512, 80)):
        X = rng.normal(size=(n, d))
        labels = rng.integers(0, classes, size=n)
        fast = measure(lambda X=X, labels=labels: class_separation(X, labels), args.repeats)
        gram = measure(lambda X=X, labels=labels: gram_separation(X, labels), args.repeats)
        assert abs(fast.value["separation"] - gram.value) < 1e-10, (fast.value, gram.value)
        report(f"n={n} d={d} C={classes}", fast, gram, "n x n cosine matrix")


if __name__ == "__main__":
    main()
