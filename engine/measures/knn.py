"""Neighbourhood alignment (Huh et al. 2024): mutual k-NN and CKNNA on cosine similarity.

Neighbours come from blocked similarity products and `np.argpartition`, so memory is
O(block x n + n k): no full argsort and no dense n x n mask. CKNNA's masked unbiased HSIC
runs on sparse matrices holding only the n k kept similarities.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.rows import unit_rows

#: rows per block when intersecting neighbour sets
BLOCK = 1024


def float32_unit_rows(X: np.ndarray) -> np.ndarray:
    """Unit rows for the float32 similarity products: divided in float64, rounded once."""
    return unit_rows(X).astype(np.float32)


def check_k(X: np.ndarray, Y: np.ndarray, k: int, minimum_k: int = 1) -> None:
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise UsageError(f"k-NN alignment needs equal row counts, got {X.shape} and {Y.shape}")
    n = X.shape[0]
    if not minimum_k <= k <= n - 1:
        raise UsageError(
            f"--k must be between {minimum_k} and n-1 = {n - 1}, got {k}",
            hint="choose a smaller k or compare more images",
        )


def knn_graph(
    X: np.ndarray, k: int, block: int | None = None, backend: Backend | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities), each (n, k): the k nearest rows, self excluded.

    Similarities are float32 products on the backend (top-k never leaves the device); rows
    of the result are sorted by index (not by similarity) so that sets intersect fast.
    """
    return (backend or resolve_backend("cpu")).topk(float32_unit_rows(X), k, block)


def shared_neighbours(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """(n, k) bool: which of row i's neighbours in A are also its neighbours in B."""
    out = np.empty(ia.shape, dtype=bool)
    for start in range(0, ia.shape[0], BLOCK):
        a, b = ia[start : start + BLOCK], ib[start : start + BLOCK]
        out[start : start + BLOCK] = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return out


def graph_mutual(ia: np.ndarray, ib: np.ndarray) -> float:
    """Mean share of each row's neighbours that two k-NN graphs have in common."""
    return float(shared_neighbours(ia, ib).mean())


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Mean over rows of |N_k^X(i) ∩ N_k^Y(i)| / k; chance ≈ k/(n−1)."""
    check_k(X, Y, k)
    return graph_mutual(knn_graph(X, k)[0], knn_graph(Y, k)[0])


def _masked(idx: np.ndarray, values: np.ndarray, keep: np.ndarray) -> sp.csr_matrix:
    n = idx.shape[0]
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


def graph_cknna(ia: np.ndarray, sa: np.ndarray, ib: np.ndarray, sb: np.ndarray) -> float:
    """CKNNA from two k-NN graphs (indices, similarities)."""
    same = ia[:, :, None] == ib[:, None, :]
    both = same.any(axis=2)
    # Y's similarity on each of A's neighbour slots (meaningful where the slot is shared)
    sb_on_a = np.take_along_axis(sb, np.argmax(same, axis=2), axis=1)
    kl = _sparse_unbiased_hsic(_masked(ia, sa, both), _masked(ia, sb_on_a, both))
    everything = np.ones_like(both)
    kk, ll = _masked(ia, sa, everything), _masked(ib, sb, everything)
    denom = _sparse_unbiased_hsic(kk, kk) * _sparse_unbiased_hsic(ll, ll)
    return float(kl / np.sqrt(denom)) if denom > 0 else float("nan")


def cknna(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Centered kernel nearest-neighbour alignment: unbiased HSIC of the cosine kernels masked
    to pairs that are k-NN in both spaces, over each space's own masked HSIC."""
    check_k(X, Y, k, minimum_k=2)
    return graph_cknna(*knn_graph(X, k), *knn_graph(Y, k))
