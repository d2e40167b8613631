"""Exact RBF CKA at any n, in row blocks: no n x n matrix is ever held whole.

For each representation, σ² is the exact median of the nonzero squared distances of the
centred rows (the 0-shot-llm-vision choice), found without sorting n²/2 values: a seeded
sample of pairs brackets the median, one blocked pass counts the values below the bracket
and keeps those inside it (or, when the bracket would hold too many, a histogram pass
narrows it first), and only the kept values are partitioned. A second blocked pass builds
every kernel's row block, K = exp(−D²/(2σ²)), and accumulates in float64 what centred
HSIC needs: the row sums of each kernel and ⟨K_a, K_b⟩ for every pair. Biased or unbiased
(Song et al.) CKA then follow in O(n) (the diagonal of an RBF kernel is 1).

When one representation's blocks fit in CACHE_BYTES, the median pass keeps them for the
HSIC pass (one product pass instead of two); above that they are recomputed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend

#: rows whose pairwise distances bracket the median
BRACKET_ROWS = 1024
#: values kept from the bracket in one pass at most; above, a histogram pass narrows it
WINDOW_VALUES = 20_000_000
HISTOGRAM_BINS = 65_536
#: distance blocks of all representations kept between the two passes up to this size
CACHE_BYTES = 768 * 1024**2


def _centred32(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(axis=0)).astype(np.float32)


def _sample_bracket(Xc: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """(low, high, expected share of positive values inside) from every pair of a seeded
    subset of BRACKET_ROWS rows. Pairs of a subset are not independent, so the bracket is
    ±6 standard deviations of a U-statistic quantile on that many rows (share ±6/√rows)."""
    n = Xc.shape[0]
    rows = np.sort(rng.choice(n, min(n, BRACKET_ROWS), replace=False))
    S = Xc[rows]
    sq = np.einsum("ij,ij->i", S, S, dtype=np.float64)
    D = sq[:, None] + sq[None, :] - 2.0 * (S @ S.T)  # float32 products: only a bracket
    sample = np.sort(D[np.triu_indices(rows.size, 1)])
    sample = sample[sample > 0]
    if sample.size < 100:
        return 0.0, np.inf, 1.0
    slack = 6.0 / np.sqrt(rows.size)
    lo = int(max((0.5 - slack) * sample.size, 0))
    hi = int(min((0.5 + slack) * sample.size, sample.size - 1))
    return float(sample[lo]), float(sample[hi]), (hi - lo) / sample.size


def _median_from(
    blocks: Callable[[], object], backend: Backend, lo: float, hi: float
) -> tuple[float | None, int, int, np.ndarray]:
    """One pass: (None, positives, below lo, values in [lo, hi]) over the strict upper
    triangle (the distance matrix is symmetric)."""
    positive = below = 0
    kept = []
    for start, stop, D in blocks():
        upper = backend.to_numpy_values(backend.upper_values(D, start, stop))
        upper = upper[upper > 0]
        positive += upper.size
        below += int(np.count_nonzero(upper < lo))
        kept.append(upper[(upper >= lo) & (upper <= hi)])
    return None, positive, below, np.concatenate(kept) if kept else np.zeros(0, np.float32)


def _select(values: np.ndarray, below: int, positive: int) -> float | None:
    """The median of all positive values from those in a bracket, or None if it missed."""
    k1, k2 = (positive - 1) // 2, positive // 2
    if positive == 0:
        return 0.0
    if not below <= k1 or below + values.size <= k2:
        return None
    picked = np.partition(values, [k1 - below, k2 - below])
    return 0.5 * (float(picked[k1 - below]) + float(picked[k2 - below]))


def _histogram_bracket(blocks, backend: Backend, lo: float, hi: float) -> tuple[float, float]:
    """Narrow [lo, hi] to the histogram bin holding the median (one counting pass)."""
    counts = np.zeros(HISTOGRAM_BINS + 2, dtype=np.int64)  # below, bins..., above
    scale = HISTOGRAM_BINS / (hi - lo)
    for start, stop, D in blocks():
        upper = backend.to_numpy_values(backend.upper_values(D, start, stop))
        upper = upper[upper > 0].astype(np.float64)
        slot = np.clip(np.floor((upper - lo) * scale), -1, HISTOGRAM_BINS).astype(np.int64) + 1
        counts += np.bincount(slot, minlength=counts.size)
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    first = int(np.searchsorted(cumulative, (total - 1) // 2 + 1))
    last = int(np.searchsorted(cumulative, total // 2 + 1))
    if first == 0 or last == counts.size - 1:
        return lo, hi  # outside the bracket: the exact pass below falls back
    return lo + (first - 1) / scale, lo + last / scale


def median_sq_distance(blocks, n: int, Xc: np.ndarray, backend: Backend, seed: int = 0) -> float:
    """Exact median of the positive squared distances, by blocked passes over `blocks()`."""
    rng = np.random.default_rng(seed)
    lo, hi, share = _sample_bracket(Xc, rng)
    if share * n * n / 2 > WINDOW_VALUES:
        lo, hi = _histogram_bracket(blocks, backend, lo, hi)
    _, positive, below, values = _median_from(blocks, backend, lo, hi)
    median = _select(values, below, positive)
    if median is None:  # the bracket missed (never seen in practice): take every value
        _, positive, below, values = _median_from(blocks, backend, 0.0, np.inf)
        median = _select(values, below, positive)
    if not median or not median > 0:
        raise UsageError("RBF CKA: every pairwise distance is zero", hint="give --sigma")
    return float(median)


def _hsic(dot: float, ra: np.ndarray, rb: np.ndarray, n: int, unbiased: bool) -> float:
    """Centred HSIC from ⟨K, L⟩ and row sums; kernels with a unit diagonal (RBF)."""
    sa, sb = float(ra.sum()), float(rb.sum())
    if not unbiased:
        return dot - 2.0 / n * float(ra @ rb) + sa * sb / n**2
    trace = dot - n
    ka, kb = ra - 1.0, rb - 1.0
    totals = (sa - n) * (sb - n)
    value = trace + totals / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(ka @ kb)
    return value / (n * (n - 3))


def rbf_sums(
    mats: list[np.ndarray],
    *,
    backend: Backend,
    sigma: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    """(⟨K_a, K_b⟩ for a <= b as a k x k upper triangle, row sums of each K_a, σ per
    representation): everything centred HSIC needs, in row blocks."""
    n, k = mats[0].shape[0], len(mats)
    cents = [_centred32(m) for m in mats]
    cache = k * n * n * 4 <= CACHE_BYTES
    kept: list[list] = [[] for _ in range(k)]

    def fresh(i: int):
        return lambda: backend.distance_blocks(cents[i])

    sigmas = []
    for i in range(k):
        if cache:
            for start, stop, D in backend.distance_blocks(cents[i]):
                kept[i].append((start, stop, D.copy() if backend.engine == "numpy" else D.clone()))
            blocks = (lambda i=i: iter(kept[i])) if sigma is None else None
        else:
            blocks = fresh(i)
        sigmas.append(
            float(sigma)
            if sigma is not None
            else float(np.sqrt(median_sq_distance(blocks, n, cents[i], backend)))
        )
    rows = [np.zeros(n) for _ in range(k)]
    dots = np.zeros((k, k))
    streams = [iter(kept[i]) if cache else backend.distance_blocks(cents[i]) for i in range(k)]
    for parts in zip(*streams, strict=True):
        start, stop = parts[0][0], parts[0][1]
        kernels = [backend.rbf_(D, s) for (_, _, D), s in zip(parts, sigmas, strict=True)]
        for i in range(k):
            for j in range(i, k):
                dot, row_sums = backend.block_stats(kernels[i], kernels[j])
                dots[i, j] += dot
                if j == i:
                    rows[i][start:stop] = row_sums
        if progress is not None:
            progress(stop - start)
    return dots, rows, sigmas


def rbf_cka_matrix(
    mats: list[np.ndarray],
    *,
    backend: Backend,
    sigma: float | None = None,
    unbiased: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[list[float]], list[float]]:
    """(k x k RBF CKA matrix, σ per representation), exact, in row blocks."""
    n, k = mats[0].shape[0], len(mats)
    dots, rows, sigmas = rbf_sums(mats, backend=backend, sigma=sigma, progress=progress)
    hsic = np.array(
        [
            [_hsic(dots[min(i, j), max(i, j)], rows[i], rows[j], n, unbiased) for j in range(k)]
            for i in range(k)
        ]
    )
    M = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            denom = hsic[i, i] * hsic[j, j]
            M[i, j] = M[j, i] = hsic[i, j] / np.sqrt(denom) if denom > 0 else float("nan")
    return M.tolist(), sigmas
