"""Seeded sampling and bootstrap intervals for estimates that are too costly to compute exactly.

Every sampled number in a report carries `{"mode": "sampled", "n", "seed", "interval"}`;
exact numbers carry `{"mode": "exact", "n"}` (see `exact_info`). Intervals are at LEVEL
(95 %); most are percentile bootstrap intervals from BOOTSTRAP resamples (`sampled_info`),
and an estimate whose bootstrap would be biased states its own method (`interval_info`).
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95
BOOTSTRAP = 1000


def exact_info(n: int) -> dict:
    return {"mode": "exact", "n": int(n)}


def interval_info(n: int, seed: int, interval_method: str) -> dict:
    """The header of every sampled estimate: n rows used, the seed, the interval's level and
    how it was made."""
    return {
        "mode": "sampled",
        "n": int(n),
        "seed": int(seed),
        "interval_level": LEVEL,
        "interval_method": interval_method,
    }


def sampled_info(n: int, seed: int, method: str, resamples: int = BOOTSTRAP) -> dict:
    return interval_info(n, seed, f"percentile bootstrap, {resamples} resamples ({method})")


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple:
    """(low, high) along axis 0 of the bootstrap replicates."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=0)
    return low, high


def bootstrap_mean(
    values: np.ndarray, rng: np.random.Generator, resamples: int = BOOTSTRAP
) -> tuple[float, float]:
    """Percentile interval of the mean of i.i.d. per-query values (e.g. hit probabilities),
    from multinomial resampling weights."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    weights = rng.multinomial(values.size, np.full(values.size, 1.0 / values.size), resamples)
    low, high = percentile_interval(weights @ values / values.size)
    return float(low), float(high)


def stratified_sample(groups: np.ndarray, per_group: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `per_group` rows of every group id >= 0, drawn without replacement, returned
    sorted by (group, row) so each group is one contiguous run."""
    groups = np.asarray(groups, dtype=np.int64)
    picked = []
    for g in np.unique(groups[groups >= 0]):
        rows = np.flatnonzero(groups == g)
        if rows.size > per_group:
            rows = np.sort(rng.choice(rows, per_group, replace=False))
        picked.append(rows)
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def stratified_weights(groups: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples, rows) multinomial counts: each group's rows resampled with replacement to
    the group's own size (a stratified bootstrap)."""
    groups = np.asarray(groups, dtype=np.int64)
    out = np.zeros((resamples, groups.size), dtype=np.float32)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        out[:, rows] = rng.multinomial(rows.size, np.full(rows.size, 1.0 / rows.size), resamples)
    return out
