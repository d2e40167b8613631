"""Rank and linear correlation across a zoo of stores, with store-resampling intervals and
permutation p-values (docs/design.md §7).

Every statistic takes arrays whose last axis is the stores, so a batch of bootstrap
resamples or permutations is one call:

- Pearson r = Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²);
- Spearman ρ = Pearson r of the average ranks (ties share their mean rank);
- Kendall τ-b = Σ_{i<j} sgn(xᵢ−xⱼ) sgn(yᵢ−yⱼ) / √(n_x n_y), with n_x, n_y the pairs not
  tied in x, y.

A statistic is NaN where it is undefined (a constant side). The interval is the 2.5 and
97.5 percentiles of the statistic over B resamples of the stores with replacement
(undefined resamples left out); the p-value is (1 + #{|null| ≥ |observed|}) / (1 + N) over
N permutations of y against x (two-sided).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: resamples or permutations evaluated per batch (bounds the (batch, n, n) Kendall signs)
BATCH = 256


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (NaN where a side is constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    num = (xc * yc).sum(axis=-1)
    den = np.sqrt((xc * xc).sum(axis=-1) * (yc * yc).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, tied values sharing their mean rank:
    #{xⱼ < xᵢ} + (#{xⱼ = xᵢ} + 1) / 2 (quadratic in the stores, which are few)."""
    x = np.asarray(x, dtype=np.float64)
    below = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(axis=-1)
    return below + (equal + 1) / 2.0


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ along the last axis: Pearson r of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall τ-b along the last axis (ties in either side count in neither n_x nor n_y)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    num = (sx * sy).sum(axis=(-2, -1))
    den = np.sqrt((sx * sx).sum(axis=(-2, -1)) * (sy * sy).sum(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman": spearman,
    "kendall": kendall,
    "pearson": pearson,
}


def _batched(stat, x: np.ndarray, y: np.ndarray, rows: np.ndarray, permute_only_y: bool):
    """`stat` on x, y re-indexed by each row of `rows` (both sides, or y only)."""
    out = np.empty(rows.shape[0])
    for lo in range(0, rows.shape[0], BATCH):
        take = rows[lo : lo + BATCH]
        xs = np.broadcast_to(x, take.shape) if permute_only_y else x[take]
        out[lo : lo + BATCH] = stat(xs, y[take])
    return out


def bootstrap_interval(
    stat, x: np.ndarray, y: np.ndarray, boot: int, rng: np.random.Generator
) -> list[float | None]:
    """95% percentile interval of `stat` over `boot` resamples of the stores."""
    n = x.shape[-1]
    values = _batched(stat, x, y, rng.integers(0, n, size=(boot, n)), permute_only_y=False)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [None, None]
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def permutation_p(
    stat, x: np.ndarray, y: np.ndarray, observed: float, perms: int, rng: np.random.Generator
) -> float | None:
    """Two-sided permutation p-value (1 + #{|null| ≥ |observed|}) / (1 + N)."""
    if not np.isfinite(observed):
        return None
    n = x.shape[-1]
    orders = rng.permuted(np.tile(np.arange(n), (perms, 1)), axis=1)
    null = _batched(stat, x, y, orders, permute_only_y=True)
    extreme = np.count_nonzero(np.abs(null) >= abs(observed) - 1e-12)
    return float((1 + extreme) / (1 + perms))


def correlate(x, y, *, boot: int = 1000, perms: int = 1000, seed: int = 0) -> dict:
    """{method: {"value", "interval", "p_value"}} for Spearman, Kendall and Pearson.

    Each method draws from its own generator seeded by (seed, method index), so one
    method's numbers do not depend on which others are asked for."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"correlate needs two 1-D arrays of one length, got {x.shape}, {y.shape}")
    out = {}
    for i, (name, stat) in enumerate(METHODS.items()):
        value = float(stat(x, y))
        rng = np.random.default_rng([seed, i])
        out[name] = {
            "value": value if np.isfinite(value) else None,
            "interval": bootstrap_interval(stat, x, y, boot, rng),
            "p_value": permutation_p(stat, x, y, value, perms, rng),
        }
    return out
