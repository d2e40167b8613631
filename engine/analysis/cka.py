"""Centred kernel alignment (DESIGN.md §7): linear, unbiased, RBF and minibatch estimators.

Linear CKA runs in feature space (d x d products, O(n d^2)) because n >> d for embedding
sets; kernel estimators compute centred HSIC from row sums, ⟨K, L⟩ and the diagonal, so the
n x n centring matrix is never built. Biased CKA of independent features is about
d / (n + d), which is why reports carry n, d and a random-pairing baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgap.errors import UsageError

KERNELS = ("linear", "rbf")
#: full n x n kernels for every REF must fit in this many bytes, else minibatch estimation
FULL_KERNEL_BYTES = 2 * 1024**3
DEFAULT_BATCH = 2048
#: rows sampled to set the RBF bandwidth in minibatch mode (all rows when n is smaller)
SIGMA_SAMPLE = 4096


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
    """Biased linear CKA ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred data."""
    _check_pair(X, Y, 2)
    Xc, Yc = _centre(X), _centre(Y)
    n, dx, dy = Xc.shape[0], Xc.shape[1], Yc.shape[1]
    if n * (dx + dy) < (dx + dy) ** 2:  # wide data: the n x n Grams are the smaller products
        K, L = Xc @ Xc.T, Yc @ Yc.T
        return _ratio(np.vdot(K, L), np.vdot(K, K), np.vdot(L, L))
    xy = Yc.T @ Xc
    return _ratio(np.vdot(xy, xy), _fro2(Xc.T @ Xc), _fro2(Yc.T @ Yc))


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
        rows = K.sum(axis=1)
        return cls(K=K, rows=rows, diag=np.diagonal(K).copy(), total=float(rows.sum()))


def hsic(a: KernelStats, b: KernelStats, *, unbiased: bool = False) -> float:
    """tr(KHLH) (up to the constant 1/(n−1)²), or Song et al.'s unbiased HSIC."""
    n = a.rows.size
    dot = float(np.vdot(a.K, b.K))
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


def squared_distances(X: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (n x n), exact zeros on the diagonal."""
    Xc = _centre(X)
    sq = np.einsum("ij,ij->i", Xc, Xc)
    D = Xc @ Xc.T
    D *= -2.0
    D += sq[:, None]
    D += sq[None, :]
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def median_sigma(D2: np.ndarray) -> float:
    """σ with σ² = median of the nonzero squared distances (the 0-shot-llm-vision choice)."""
    values = D2[D2 != 0]
    if values.size == 0:
        raise UsageError("RBF CKA: every pairwise distance is zero", hint="give --sigma")
    return float(np.sqrt(np.median(values, overwrite_input=True)))


def rbf_kernel(X: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, float]:
    """K = exp(−‖xi−xj‖²/(2σ²)) built in place over the distance matrix; returns (K, σ)."""
    K = squared_distances(X)
    if sigma is None:
        sigma = median_sigma(K)
    K *= -0.5 / sigma**2
    np.exp(K, out=K)
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


# ---- report ---------------------------------------------------------------------------------
def _validate(kernel: str, sigma: float | None, batch_size: int | None, n_refs: int) -> None:
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use --kernel linear or rbf")
    if n_refs < 2:
        raise UsageError("cka needs at least two REFs", hint="e.g. clip.h5:image clip.h5:text")
    if sigma is not None and not sigma > 0:
        raise UsageError(f"--sigma must be positive, got {sigma}")
    if batch_size is not None and batch_size < 4:
        raise UsageError(f"--batch-size must be at least 4, got {batch_size}")


def _matrix(k: int, pair, *, unit_diagonal: bool = True) -> list[list[float]]:
    M = np.eye(k)
    for i in range(k):
        for j in range(i + (1 if unit_diagonal else 0), k):
            M[i, j] = M[j, i] = pair(i, j)
    return M.tolist()


def cka_report(
    refs: list[str],
    *,
    kernel: str = "linear",
    unbiased: bool = False,
    sigma: float | None = None,
    batch_size: int | None = None,
) -> dict:
    """The `mgap cka --json` document: names, matrix (diagonal 1), n, dims, estimator, kernel."""
    from mgap.engine.analysis.refs import align_refs

    _validate(kernel, sigma, batch_size, len(refs))
    _, mats, names = align_refs(refs)
    n, k = mats[0].shape[0], len(mats)
    if unbiased and n < 4 and batch_size is None:
        raise UsageError(f"unbiased CKA needs at least 4 shared rows, got {n}")
    doc: dict = {"names": names, "n": n, "dims": [int(m.shape[1]) for m in mats]}
    doc["kernel"] = kernel
    too_big = kernel == "rbf" and k * n * n * 8 > FULL_KERNEL_BYTES
    if batch_size is not None or too_big:
        batch = batch_size or DEFAULT_BATCH
        doc["estimator"] = "minibatch-unbiased"
        doc["batch_size"] = batch
        doc["matrix"] = _matrix(
            k, lambda i, j: minibatch_cka(mats[i], mats[j], batch, kernel, 0, sigma)
        )
        return doc
    doc["estimator"] = "unbiased" if unbiased else "biased"
    if kernel == "linear":
        fn = unbiased_cka if unbiased else linear_cka
        doc["matrix"] = _matrix(k, lambda i, j: fn(mats[i], mats[j]))
        if not unbiased:
            doc["chance"] = _matrix(
                k, lambda i, j: pairing_baseline(mats[i], mats[j]), unit_diagonal=False
            )
        return doc
    kernels = [rbf_kernel(m, sigma) for m in mats]
    stats = [KernelStats.of(K) for K, _ in kernels]
    doc["sigma"] = [s for _, s in kernels]
    doc["matrix"] = _matrix(k, lambda i, j: kernel_cka(stats[i], stats[j], unbiased=unbiased))
    return doc
