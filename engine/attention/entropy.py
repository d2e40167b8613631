"""Entropy of an attention map, in nats: H(p) = −Σ p log p over the patch distribution.

A map spread evenly over n patches has the largest entropy, log n (the reference printed
beside every result); one concentrated on a single patch has 0. Maps with different grids
(ViLT's vary per image) are compared through H / log n, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def entropy(weights: np.ndarray) -> float:
    """Natural-log entropy of a non-negative map, normalised to sum 1 first; 0·log 0 = 0."""
    p = np.asarray(weights, dtype=np.float64).ravel()
    p = p / p.sum()
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum())


def uniform_entropy(n_patches: int) -> float:
    """The entropy of the uniform map over `n_patches`: log n."""
    return float(np.log(n_patches))


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """n, mean, sample standard deviation (ddof 1; 0 for one value), min and max."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
    }
