"""Calibrated nulls for `mgap cka --permutations` and `mgap knn --permutations`: the score
with the rows of the second REF shuffled, by the same estimator on the same rows
(docs/design.md §7). The JSON gains a `null` object; the numbers are
`mgap.engine.measures.permutation`'s.

`--sample N` draws the same N seeded rows for CKA (the null and its `observed` are then
on those rows); for k-NN the same N seeded query rows, with permutations that keep the
query set (a shuffle of the queries among themselves and of the other rows among
themselves), so the neighbours of every permuted query are still known.
"""

from __future__ import annotations

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.cka import rbf_kernel
from mgap.engine.measures.knn import check_k, float32_unit_rows, graph_cknna
from mgap.engine.measures.permutation import (
    GramNull,
    linear_gram,
    mutual_overlap,
    permutation_null,
    permuted_neighbours,
)
from mgap.engine.reports.analysis import NullScore, PermutationNull
from mgap.engine.studies.refs import align_refs

#: rows above which the n x n Grams of a CKA null are refused without --sample
MAX_GRAM_ROWS = 15_000


def _check_permutations(perms: int) -> None:
    if perms < 1:
        raise UsageError(f"--permutations must be at least 1, got {perms}")


def _gram(X: np.ndarray, kernel: str, sigma: float | None) -> np.ndarray:
    if kernel == "linear":
        return linear_gram(X)
    return rbf_kernel(np.asarray(X, dtype=np.float64), sigma)[0]


def cka_null(
    refs: list[str],
    perms: int,
    *,
    kernel: str = "linear",
    unbiased: bool = False,
    sigma: float | None = None,
    sample: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> PermutationNull:
    """One null per pair of REFs (i < j), the rows of j permuted."""
    _check_permutations(perms)
    if batch_size is not None:
        raise UsageError(
            "--permutations works with the exact and --sample estimators, not --batch-size",
            hint="drop --batch-size",
        )
    _, mats, names = align_refs(refs, np.float32)
    n = mats[0].shape[0]
    if sample is not None and sample < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, int(sample), replace=False))
        mats, n = [m[rows] for m in mats], int(sample)
    if n > MAX_GRAM_ROWS:
        raise UsageError(
            f"a CKA permutation null keeps two {n} x {n} Grams; at most {MAX_GRAM_ROWS} rows",
            hint=f"add --sample {MAX_GRAM_ROWS // 4} to draw the null on seeded rows",
        )
    grams = [_gram(m, kernel, sigma) for m in mats]
    pairs = []
    for i in range(len(grams)):
        for j in range(i + 1, len(grams)):
            null = GramNull(grams[i], grams[j], unbiased=unbiased)
            scores = permutation_null(null.cka, n, perms, seed)
            pairs.append(NullScore.build(refs=[names[i], names[j]], **scores))
    return PermutationNull.build(
        permutations=int(perms),
        seed=int(seed),
        n=int(n),
        permuted="rows of the second REF of each pair",
        pairs=pairs,
    )


def _query_permutation(rng: np.random.Generator, n: int, queries: np.ndarray) -> np.ndarray:
    """A random permutation of n rows that maps the query rows onto themselves."""
    p = np.arange(n)
    rest = np.setdiff1d(p, queries)
    p[queries] = rng.permutation(queries)
    p[rest] = rng.permutation(rest)
    return p


def knn_null(
    ref_a: str,
    ref_b: str,
    perms: int,
    *,
    k: int = 10,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> PermutationNull:
    """Nulls of mutual k-NN and (without --sample) CKNNA: the k-NN graphs are built once and
    each permutation re-indexes B's graph."""
    _check_permutations(perms)
    _, (X, Y), _ = align_refs([ref_a, ref_b], np.float32)
    check_k(X, Y, k, minimum_k=2)
    n = X.shape[0]
    be = backend or resolve_backend("cpu")
    queries = None
    if sample is not None and sample < n:
        queries = np.sort(np.random.default_rng(seed).choice(n, int(sample), replace=False))
    ia, sa = be.topk(float32_unit_rows(X), k, queries=queries)
    ib, sb = be.topk(float32_unit_rows(Y), k, queries=queries)
    head = {
        "permutations": int(perms),
        "seed": int(seed),
        "n": int(n),
        "permuted": "rows of the second REF"
        + (" (queries among queries)" if queries is not None else ""),
    }
    if queries is None:
        mutual = permutation_null(
            lambda p: mutual_overlap(ia, ib if p is None else permuted_neighbours(ib, p)),
            n,
            perms,
            seed,
        )
        cknna = permutation_null(
            lambda p: graph_cknna(
                ia, sa, *((ib, sb) if p is None else (permuted_neighbours(ib, p), sb[p]))
            ),
            n,
            perms,
            seed,
        )
        return PermutationNull.build(
            **head, mutual_knn=NullScore.build(**mutual), cknna=NullScore.build(**cknna)
        )
    mutual = _sampled_mutual_null(ia, ib, n, queries, perms, seed)
    return PermutationNull.build(**head, mutual_knn=NullScore.build(**mutual), cknna=None)


def _sampled_mutual_null(
    ia: np.ndarray, ib: np.ndarray, n: int, queries: np.ndarray, perms: int, seed: int
) -> dict:
    """Mutual k-NN of the sampled queries against permutations that keep the query set, so
    the neighbours of every permuted query are still known."""
    slot = np.full(n, -1)
    slot[queries] = np.arange(queries.size)

    def sampled(p: np.ndarray | None) -> float:
        if p is None:
            return mutual_overlap(ia, ib)
        inverse = np.empty_like(p)
        inverse[p] = np.arange(n)
        return mutual_overlap(ia, inverse[ib[slot[p[queries]]]])

    return permutation_null(
        sampled, n, perms, seed, draw=lambda rng: _query_permutation(rng, n, queries)
    )
