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

#: rows per block when intersecting neighbour sets
BLOCK = 1024


def _unit(X: np.ndarray) -> np.ndarray:
    """Unit rows in float32 (norms taken in float64); zero rows stay zero."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))[:, None]
    return (X / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _check(X: np.ndarray, Y: np.ndarray, k: int, minimum_k: int = 1) -> None:
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
    return (backend or resolve_backend("cpu")).topk(_unit(X), k, block)


def _shared(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """(n, k) bool: which of row i's neighbours in A are also its neighbours in B."""
    out = np.empty(ia.shape, dtype=bool)
    for start in range(0, ia.shape[0], BLOCK):
        a, b = ia[start : start + BLOCK], ib[start : start + BLOCK]
        out[start : start + BLOCK] = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return out


def _mutual(ia: np.ndarray, ib: np.ndarray) -> float:
    return float(_shared(ia, ib).mean())


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Mean over rows of |N_k^X(i) ∩ N_k^Y(i)| / k; chance ≈ k/(n−1)."""
    _check(X, Y, k)
    return _mutual(knn_graph(X, k)[0], knn_graph(Y, k)[0])


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


def _cknna(ia: np.ndarray, sa: np.ndarray, ib: np.ndarray, sb: np.ndarray) -> float:
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
    _check(X, Y, k, minimum_k=2)
    return _cknna(*knn_graph(X, k), *knn_graph(Y, k))


def knn_report(
    ref_a: str,
    ref_b: str,
    *,
    k: int = 10,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> dict:
    """The `mgap knn --json` document: k, n, mutual_knn, cknna, chance = k/(n−1).

    REFs are read in float32; each k-NN graph is one blocked pass of float32 products with
    top-k on the backend (the score block never leaves the device). `sample=N` finds the
    neighbours (among all n) of N seeded query rows only: mutual k-NN is then the mean
    over those queries with a 95 % bootstrap interval, and CKNNA, which needs every row's
    neighbours, is not computed."""
    from mgap.engine.measures.sampling import bootstrap_mean, exact_info, sampled_info
    from mgap.engine.studies.refs import align_refs
    from mgap.engine.studies.work import Work

    _, (X, Y), names = align_refs([ref_a, ref_b], np.float32)
    _check(X, Y, k, minimum_k=2)
    n = X.shape[0]
    be = backend or resolve_backend("cpu")
    rng = np.random.default_rng(seed)
    queries = None
    if sample is not None and sample < n:
        queries = np.sort(rng.choice(n, int(sample), replace=False))
    q = n if queries is None else queries.size
    flops = 2.0 * q * n * (X.shape[1] + Y.shape[1])
    with Work("k-NN graphs", 2, flops, be) as work:
        ia, sa = be.topk(_unit(X), k, queries=queries)
        work.advance(1)
        ib, sb = be.topk(_unit(Y), k, queries=queries)
        work.advance(1)
    doc = {"names": names, "k": k, "n": n, "chance": k / (n - 1), "compute": be.describe()}
    if queries is None:
        doc.update(mutual_knn=_mutual(ia, ib), cknna=_cknna(ia, sa, ib, sb))
        doc["estimate"] = exact_info(n)
        return doc
    per_query = _shared(ia, ib).mean(axis=1)
    low, high = bootstrap_mean(per_query, rng)
    doc.update(mutual_knn=float(per_query.mean()), cknna=None)
    doc["estimate"] = {
        **sampled_info(q, seed, "query rows"),
        "interval": {"mutual_knn": [low, high]},
        "note": "CKNNA needs every row's neighbours: run without --sample",
    }
    return doc
