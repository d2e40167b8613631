"""Neighbourhood alignment (Huh et al. 2024): mutual k-NN and CKNNA on cosine similarity.

Neighbours come from blocked similarity products and `np.argpartition`, so memory is
O(block x n + n k): no full argsort and no dense n x n mask. CKNNA's masked unbiased HSIC
runs on sparse matrices holding only the n k kept similarities.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mgap.errors import UsageError

#: rows per similarity block: block x n float64 stays near 80 MB at n = 10,000
BLOCK = 1024


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def _check(X: np.ndarray, Y: np.ndarray, k: int, minimum_k: int = 1) -> None:
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise UsageError(f"k-NN alignment needs equal row counts, got {X.shape} and {Y.shape}")
    n = X.shape[0]
    if not minimum_k <= k <= n - 2:
        raise UsageError(
            f"--k must be between {minimum_k} and n-2 = {n - 2}, got {k}",
            hint="choose a smaller k or compare more images",
        )


def knn_graph(X: np.ndarray, k: int, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities), each (n, k): the k nearest rows, self excluded.

    Rows of the result are sorted by index (not by similarity) so that sets intersect fast.
    """
    U = _unit(X)
    n = U.shape[0]
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k))
    for start in range(0, n, block):
        stop = min(start + block, n)
        S = U[start:stop] @ U.T
        S[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = np.argpartition(S, n - k, axis=1)[:, n - k :]
        top.sort(axis=1)
        idx[start:stop] = top
        sim[start:stop] = np.take_along_axis(S, top, axis=1)
    return idx, sim


def _shared(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """(n, k) bool: which of row i's neighbours in A are also its neighbours in B."""
    out = np.empty(ia.shape, dtype=bool)
    for start in range(0, ia.shape[0], BLOCK):
        a, b = ia[start : start + BLOCK], ib[start : start + BLOCK]
        out[start : start + BLOCK] = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return out


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Mean over rows of |N_k^X(i) ∩ N_k^Y(i)| / k; chance ≈ k/(n−1)."""
    _check(X, Y, k)
    ia, _ = knn_graph(X, k)
    ib, _ = knn_graph(Y, k)
    return float(_shared(ia, ib).mean())


def _masked(idx: np.ndarray, values: np.ndarray, keep: np.ndarray, n: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(n), idx.shape[1])
    flat = keep.ravel()
    return sp.csr_matrix((values.ravel()[flat], (rows[flat], idx.ravel()[flat])), shape=(n, n))


def _sparse_unbiased_hsic(A: sp.csr_matrix, B: sp.csr_matrix) -> float:
    """Song et al.'s unbiased HSIC for zero-diagonal (possibly asymmetric) sparse kernels."""
    n = A.shape[0]
    trace = float(A.multiply(B.T).sum())  # tr(ÃB̃)
    totals = float(A.sum()) * float(B.sum())
    cross = float(np.asarray(A.sum(axis=0)).ravel() @ np.asarray(B.sum(axis=1)).ravel())
    return (trace + totals / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def cknna(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Centered kernel nearest-neighbour alignment: unbiased HSIC of kernels masked to the
    pairs that are k-NN in both spaces, normalised by each space's own masked HSIC."""
    _check(X, Y, k, minimum_k=2)
    n = X.shape[0]
    ia, sa = knn_graph(X, k)
    ib, sb = knn_graph(Y, k)
    both = _shared(ia, ib)
    # similarity of Y on A's neighbour slots that are also B's neighbours
    col = np.argmax(ia[:, :, None] == ib[:, None, :], axis=2)
    sb_on_a = np.take_along_axis(sb, col, axis=1)
    everything = np.ones_like(both)
    kl = _sparse_unbiased_hsic(_masked(ia, sa, both, n), _masked(ia, sb_on_a, both, n))
    kk = _masked(ia, sa, everything, n)
    ll = _masked(ib, sb, everything, n)
    denom = _sparse_unbiased_hsic(kk, kk) * _sparse_unbiased_hsic(ll, ll)
    return float(kl / np.sqrt(denom)) if denom > 0 else float("nan")


def knn_report(ref_a: str, ref_b: str, *, k: int = 10) -> dict:
    """The `mgap knn --json` document: k, n, mutual_knn, cknna, chance = k/(n−1)."""
    from mgap.engine.analysis.refs import align_refs

    _, (X, Y), names = align_refs([ref_a, ref_b])
    n = X.shape[0]
    return {
        "names": names,
        "k": k,
        "n": n,
        "mutual_knn": mutual_knn(X, Y, k),
        "cknna": cknna(X, Y, k),
        "chance": k / (n - 1),
    }
