"""Centred kernel alignment (docs/design.md §7): linear, unbiased, RBF and minibatch estimators.

Linear CKA runs in feature space (d x d products, O(n d^2)) because n >> d for embedding
sets; kernel estimators compute centred HSIC from row sums, ⟨K, L⟩ and the diagonal, so the
n x n centring matrix is never built. Biased CKA of independent features is about
d / (n + d), which is why reports carry n, d and a random-pairing baseline.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mgap.core.errors import UsageError

KERNELS = ("linear", "rbf")
DEFAULT_BATCH = 2048
#: rows sampled to set the RBF bandwidth in minibatch mode (all rows when n is smaller)
SIGMA_SAMPLE = 4096
#: entries sampled to bracket the median distance before the exact selection
MEDIAN_SAMPLE = 100_000
#: n x n passes on fewer rows than this stay on one thread
PARALLEL_ROWS = 1024
THREADS = os.cpu_count() or 1


def _centre(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X - X.mean(axis=0)


def _ratio(xy: float, xx: float, yy: float) -> float:
    denom = xx * yy
    return float(xy / np.sqrt(denom)) if denom > 0 else float("nan")


def _check_pair(X: np.ndarray, Y: np.ndarray, minimum: int) -> None:
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise UsageError(f"CKA needs two (n, d) matrices with equal n, got {X.shape} and {Y.shape}")
    if X.shape[0] < minimum:
        raise UsageError(f"this CKA estimator needs at least {minimum} rows, got {X.shape[0]}")


# ---- linear kernel, feature space ----------------------------------------------------------
def _fro2(G: np.ndarray) -> float:
    return float(np.vdot(G, G))


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Biased linear CKA ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred data.

    Centring and the Frobenius sums are float64; the d×d products run in float32, which
    halves their cost and moves CKA by ~1e-8 (stores hold float16 embeddings anyway;
    tests/test_cka.py pins the agreement with a float64 reference to 1e-7).
    """
    _check_pair(X, Y, 2)
    Xc, Yc = _centre(X).astype(np.float32), _centre(Y).astype(np.float32)
    n, dx, dy = Xc.shape[0], Xc.shape[1], Yc.shape[1]
    if n * (dx + dy) < (dx + dy) ** 2:  # wide data: the n x n Grams are the smaller products
        K, L = (Xc @ Xc.T).astype(np.float64), (Yc @ Yc.T).astype(np.float64)
        return _ratio(np.vdot(K, L), np.vdot(K, K), np.vdot(L, L))
    xy = (Yc.T @ Xc).astype(np.float64)
    xx, yy = (Xc.T @ Xc).astype(np.float64), (Yc.T @ Yc).astype(np.float64)
    return _ratio(np.vdot(xy, xy), _fro2(xx), _fro2(yy))


def _unbiased_linear_hsic(Xc: np.ndarray, Yc: np.ndarray, cross: float) -> float:
    """Song et al. unbiased HSIC of the linear kernels, from O(n d) terms plus ⟨K, L⟩ = cross."""
    n = Xc.shape[0]
    a, b = np.einsum("ij,ij->i", Xc, Xc), np.einsum("ij,ij->i", Yc, Yc)
    sx, sy = Xc.sum(axis=0), Yc.sum(axis=0)
    k_rows, l_rows = Xc @ sx - a, Yc @ sy - b  # K̃1 and L̃1 (K̃ = K with a zero diagonal)
    trace = cross - float(a @ b)
    totals = (float(sx @ sx) - a.sum()) * (float(sy @ sy) - b.sum())
    value = trace + totals / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k_rows @ l_rows)
    return value / (n * (n - 3))


def unbiased_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA with Song et al.'s unbiased HSIC: ≈ 0 for independent features at any n/d."""
    _check_pair(X, Y, 4)
    Xc, Yc = _centre(X), _centre(Y)
    xy = Yc.T @ Xc
    return _ratio(
        _unbiased_linear_hsic(Xc, Yc, float(np.vdot(xy, xy))),
        _unbiased_linear_hsic(Xc, Xc, _fro2(Xc.T @ Xc)),
        _unbiased_linear_hsic(Yc, Yc, _fro2(Yc.T @ Yc)),
    )


def pairing_baseline(X: np.ndarray, Y: np.ndarray) -> float:
    """Expected biased linear CKA when Y's rows are randomly re-paired with X's (exact).

    For centred columns E_π(Σ_i x_πi y_i)² = ‖x‖²‖y‖²/(n−1), so E‖YᵀPX‖²_F = ‖X‖²_F‖Y‖²_F/(n−1).
    For isotropic independent features it is ≈ d/(n+d).
    """
    _check_pair(X, Y, 2)
    Xc, Yc = _centre(X), _centre(Y)
    n = Xc.shape[0]
    num = float(np.vdot(Xc, Xc) * np.vdot(Yc, Yc)) / (n - 1)
    return _ratio(num, _fro2(Xc.T @ Xc), _fro2(Yc.T @ Yc))


# ---- general kernels -----------------------------------------------------------------------
@dataclass
class KernelStats:
    """What centred HSIC needs from one kernel besides ⟨K, L⟩: row sums, diagonal, total."""

    K: np.ndarray
    rows: np.ndarray
    diag: np.ndarray
    total: float

    @classmethod
    def of(cls, K: np.ndarray) -> KernelStats:
        rows = K.sum(axis=1, dtype=np.float64)
        diag = np.diagonal(K).astype(np.float64)
        return cls(K=K, rows=rows, diag=diag, total=float(rows.sum()))


def hsic(a: KernelStats, b: KernelStats, *, unbiased: bool = False) -> float:
    """tr(KHLH) (up to the constant 1/(n−1)²), or Song et al.'s unbiased HSIC."""
    return hsic_from_dot(float(np.vdot(a.K, b.K)), a, b, unbiased=unbiased)


def hsic_from_dot(dot: float, a: KernelStats, b: KernelStats, *, unbiased: bool) -> float:
    """`hsic` given ⟨K, L⟩ = `dot`, computed elsewhere (for many pairs in one product)."""
    n = a.rows.size
    if not unbiased:
        return dot - 2.0 / n * float(a.rows @ b.rows) + a.total * b.total / n**2
    trace = dot - float(a.diag @ b.diag)
    ka, kb = a.rows - a.diag, b.rows - b.diag
    totals = (a.total - a.diag.sum()) * (b.total - b.diag.sum())
    value = trace + totals / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(ka @ kb)
    return value / (n * (n - 3))


def kernel_cka(a: KernelStats, b: KernelStats, *, unbiased: bool = False) -> float:
    return _ratio(
        hsic(a, b, unbiased=unbiased), hsic(a, a, unbiased=unbiased), hsic(b, b, unbiased=unbiased)
    )


def _spans(n: int) -> list[tuple[int, int]]:
    step = max(64, -(-n // (4 * THREADS)))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _row_blocks(n: int, fn) -> list:
    """Run fn(start, stop) over row blocks on every core: numpy ufuncs on large slices release
    the GIL, so the memory-bound n x n passes scale with threads (BLAS already does)."""
    if n < PARALLEL_ROWS:
        return [fn(0, n)]
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda span: fn(*span), _spans(n)))


def squared_distances(X: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (n x n), exact zeros on the diagonal."""
    Xc = _centre(X)
    sq = np.einsum("ij,ij->i", Xc, Xc)
    D = Xc @ Xc.T

    def finish(start: int, stop: int) -> None:
        block = D[start:stop]
        block *= -2.0
        block += sq[start:stop, None] + sq[None, :]  # one rounded sum: D stays exactly symmetric
        np.maximum(block, 0.0, out=block)
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0

    _row_blocks(D.shape[0], finish)
    return D


def _exact_median(values: np.ndarray) -> float:
    m = values.size
    lo, hi = np.partition(values, [(m - 1) // 2, m // 2])[[(m - 1) // 2, m // 2]]
    return 0.5 * (float(lo) + float(hi))


def _upper_parts(D2: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows a..b of the strict upper triangle: the rectangle right of the diagonal block and
    the diagonal block's own upper triangle."""
    return D2[a:b, b:], D2[a:b, a:b][np.triu_indices(b - a, 1)]


def median_sigma(D2: np.ndarray) -> float:
    """σ with σ² = median of the nonzero squared distances (the 0-shot-llm-vision choice).

    D2 is symmetric, so the strict upper triangle has the same median. Exact without sorting
    n²/2 values: a random sample of pairs brackets the median; one threaded pass counts the
    positive values and those below the bracket and keeps those inside, and only those are
    partitioned (if the bracket misses, the full selection runs). D2 is left unchanged.
    """
    n = D2.shape[0]
    if n * n <= 4 * MEDIAN_SAMPLE:
        upper = D2[np.triu_indices(n, 1)]
        return _checked_sqrt(_exact_median(upper[upper > 0]) if (upper > 0).any() else 0.0)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, (2, MEDIAN_SAMPLE))
    sample = np.sort(D2[i[i != j], j[i != j]])
    sample = sample[sample > 0]
    slack = 6.0 * np.sqrt(MEDIAN_SAMPLE)  # ±12 standard deviations of the sample rank
    lo = sample[max(int(sample.size / 2 - slack), 0)] if sample.size else 0.0
    hi = sample[min(int(sample.size / 2 + slack), sample.size - 1)] if sample.size else 0.0

    def scan(a: int, b: int) -> tuple[int, int, list[np.ndarray]]:
        positive = below = 0
        kept = []
        for part in _upper_parts(D2, a, b):
            positive += int(np.count_nonzero(part > 0))
            below += int(np.count_nonzero((part > 0) & (part < lo)))
            kept.append(part[(part >= lo) & (part <= hi) & (part > 0)])
        return positive, below, kept

    parts = _row_blocks(n, scan)
    m = sum(p[0] for p in parts)
    below = sum(p[1] for p in parts)
    window = np.concatenate([w for p in parts for w in p[2]])
    k1, k2 = (m - 1) // 2, m // 2
    if m == 0:
        return _checked_sqrt(0.0)
    if not below <= k1 or below + window.size <= k2:
        upper = np.concatenate([v.ravel() for a, b in _spans(n) for v in _upper_parts(D2, a, b)])
        return _checked_sqrt(_exact_median(upper[upper > 0]))
    picked = np.partition(window, [k1 - below, k2 - below])
    return _checked_sqrt(0.5 * (picked[k1 - below] + picked[k2 - below]))


def _checked_sqrt(median: float) -> float:
    if not median > 0:
        raise UsageError("RBF CKA: every pairwise distance is zero", hint="give --sigma")
    return float(np.sqrt(median))


def check_sigma(sigma: float) -> None:
    """σ must be finite and large enough that 1/(2σ²) is finite (else K is 0 or NaN)."""
    if not (math.isfinite(sigma) and sigma > 1e-150):
        raise UsageError(
            f"--sigma {sigma!r} makes the RBF kernel degenerate (all 0 or NaN)",
            hint="pass a finite σ above 1e-150, or leave --sigma out for the median distance",
        )


def rbf_kernel(X: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, float]:
    """K = exp(−‖xi−xj‖²/(2σ²)) built in place over the distance matrix; returns (K, σ)."""
    K = squared_distances(X)
    if sigma is None:
        sigma = median_sigma(K)
    check_sigma(sigma)
    scale = -0.5 / sigma**2

    def expo(start: int, stop: int) -> None:
        block = K[start:stop]
        block *= scale
        np.exp(block, out=block)

    _row_blocks(K.shape[0], expo)
    return K, sigma


def rbf_cka(
    X: np.ndarray, Y: np.ndarray, sigma: float | None = None, unbiased: bool = False
) -> float:
    """RBF CKA with a per-representation median bandwidth unless `sigma` is given."""
    _check_pair(X, Y, 4 if unbiased else 2)
    a = KernelStats.of(rbf_kernel(X, sigma)[0])
    b = KernelStats.of(rbf_kernel(Y, sigma)[0])
    return kernel_cka(a, b, unbiased=unbiased)


# ---- minibatch -------------------------------------------------------------------------------
def _sample_sigma(X: np.ndarray, rng: np.random.Generator) -> float:
    rows = rng.choice(X.shape[0], min(X.shape[0], SIGMA_SAMPLE), replace=False)
    return median_sigma(squared_distances(X[np.sort(rows)]))


def _batch_kernel(X: np.ndarray, kernel: str, sigma: float | None) -> KernelStats:
    if kernel == "linear":
        Xc = _centre(X)
        return KernelStats.of(Xc @ Xc.T)
    return KernelStats.of(rbf_kernel(X, sigma)[0])


def minibatch_cka(
    X: np.ndarray,
    Y: np.ndarray,
    batch_size: int,
    kernel: str = "linear",
    seed: int = 0,
    sigma: float | None = None,
) -> float:
    """Unbiased HSIC summed over random minibatches (Nguyen et al. 2021), then normalised.

    Memory is O(batch²). For RBF, one bandwidth per representation is fixed up front (from
    `sigma` or a sample of rows) so every batch uses the same kernel.
    """
    _check_pair(X, Y, 4)
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use linear or rbf")
    if batch_size < 4:
        raise UsageError(f"--batch-size must be at least 4, got {batch_size}")
    rng = np.random.default_rng(seed)
    sx = sy = sigma
    if kernel == "rbf" and sigma is None:
        sx, sy = _sample_sigma(X, rng), _sample_sigma(Y, rng)
    order = rng.permutation(X.shape[0])
    xy = xx = yy = 0.0
    for start in range(0, order.size, batch_size):
        rows = np.sort(order[start : start + batch_size])
        if rows.size < 4:  # the unbiased estimator is undefined below 4 rows
            continue
        a, b = _batch_kernel(X[rows], kernel, sx), _batch_kernel(Y[rows], kernel, sy)
        xy += hsic(a, b, unbiased=True)
        xx += hsic(a, a, unbiased=True)
        yy += hsic(b, b, unbiased=True)
    return _ratio(xy, xx, yy)


# ---- matrices over several representations ---------------------------------------------------
def pair_matrix(k: int, pair, *, unit_diagonal: bool = True) -> list[list[float]]:
    """k x k symmetric matrix of pair(i, j) (i < j; the diagonal too unless it is 1)."""
    M = np.eye(k)
    for i in range(k):
        for j in range(i + (1 if unit_diagonal else 0), k):
            M[i, j] = M[j, i] = pair(i, j)
    return M.tolist()


def linear_matrices(
    mats: list[np.ndarray], unbiased: bool
) -> tuple[list[list[float]], list[list[float]] | None]:
    """All pairs with each representation centred and its d x d Gram norm computed once; the random-pairing
    baseline comes with biased CKA."""
    n = mats[0].shape[0]
    cent = [_centre(m) for m in mats]
    grams = [_fro2(c.T @ c) for c in cent]
    if unbiased:
        selfs = [_unbiased_linear_hsic(c, c, g) for c, g in zip(cent, grams, strict=True)]

    def pair(i: int, j: int) -> float:
        xy = cent[j].T @ cent[i]
        cross = _fro2(xy)
        if unbiased:
            return _ratio(_unbiased_linear_hsic(cent[i], cent[j], cross), selfs[i], selfs[j])
        return _ratio(cross, grams[i], grams[j])

    k = len(mats)
    if unbiased:
        return pair_matrix(k, pair), None
    sizes = [_fro2(c) for c in cent]
    chance = pair_matrix(
        k,
        lambda i, j: _ratio(sizes[i] * sizes[j] / (n - 1), grams[i], grams[j]),
        unit_diagonal=False,
    )
    return pair_matrix(k, pair), chance


# ---- every layer against every layer, from Gram matrices --------------------------------------
#: Gram entries per float32 partial sum of the stacked inner products (each block's sum is
#: then added in float64: ~4e-8 relative error against float64 throughout, at float32 speed)
DOT_ENTRIES = 32_768


def centred_grams(mats: list[np.ndarray]) -> np.ndarray:
    """(layers, n, n) float32: each representation's Gram of its column-centred rows (the
    centring in float64, the product in float32 as in `linear_cka`), built once."""
    n = mats[0].shape[0]
    out = np.empty((len(mats), n, n), dtype=np.float32)
    for i, X in enumerate(mats):
        Xc = _centre(X).astype(np.float32)
        np.matmul(Xc, Xc.T, out=out[i])
    return out


def gram_dots(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(⟨A_a, B_b⟩ for every pair, ⟨A_a, A_a⟩, ⟨B_b, B_b⟩) of two Gram stacks: one stacked
    float32 product per block of rows, summed in float64, so each Gram is read once whatever
    the number of pairs (B is A: the self terms are the diagonal of the same product)."""
    n = A.shape[1]
    step = max(1, DOT_ENTRIES // n)
    cross = np.zeros((A.shape[0], B.shape[0]))
    self_a, self_b = np.zeros(A.shape[0]), np.zeros(B.shape[0])
    for start in range(0, n, step):
        a = A[:, start : start + step].reshape(A.shape[0], -1)
        b = a if B is A else B[:, start : start + step].reshape(B.shape[0], -1)
        cross += a @ b.T
        if B is not A:
            self_a += np.einsum("ij,ij->i", a, a, dtype=np.float64)
            self_b += np.einsum("ij,ij->i", b, b, dtype=np.float64)
    if B is A:
        self_a = self_b = np.diag(cross).copy()
    return cross, self_a, self_b


def gram_cka_matrix(A: np.ndarray, B: np.ndarray | None = None, *, unbiased: bool) -> np.ndarray:
    """CKA of every Gram of stack A (rows) with every Gram of stack B (columns), biased or
    unbiased, from `gram_dots` and `hsic_from_dot`; B None means A against itself, which is
    then exactly symmetric with a unit diagonal."""
    same = B is None
    B = A if same else B
    stats_a = [KernelStats.of(G) for G in A]
    stats_b = stats_a if same else [KernelStats.of(G) for G in B]
    cross, self_a, self_b = gram_dots(A, B)
    h_a = [hsic_from_dot(d, s, s, unbiased=unbiased) for d, s in zip(self_a, stats_a, strict=True)]
    h_b = [hsic_from_dot(d, s, s, unbiased=unbiased) for d, s in zip(self_b, stats_b, strict=True)]
    M = np.empty(cross.shape)
    for i in range(M.shape[0]):
        for j in range(i if same else 0, M.shape[1]):
            value = hsic_from_dot(cross[i, j], stats_a[i], stats_b[j], unbiased=unbiased)
            M[i, j] = _ratio(value, h_a[i], h_b[j])
            if same:
                M[j, i] = M[i, j]
    return M
