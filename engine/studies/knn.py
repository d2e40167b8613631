"""`mgap knn`: mutual k-NN and CKNNA (Huh et al. 2024) of two REFs, as a `KnnReport`.

The neighbour graphs and the scores are measures (`mgap.engine.measures.knn`); this study
reads the REFs, runs both graphs on the backend with progress, and reports how exact the
numbers are (`--sample N`: mutual k-NN over N query rows, with a bootstrap interval).
"""

from __future__ import annotations

import numpy as np

from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.knn import (
    check_k,
    float32_unit_rows,
    graph_cknna,
    graph_mutual,
    shared_neighbours,
)
from mgap.engine.measures.sampling import bootstrap_mean, sampled_info
from mgap.engine.reports.analysis import Compute, Estimate, KnnReport
from mgap.engine.studies.refs import align_refs
from mgap.engine.studies.work import Work

SAMPLED_NOTE = "CKNNA needs every row's neighbours: run without --sample"


def pick_queries(n: int, sample: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """The seeded query rows of `--sample` (sorted), or None for every row."""
    if sample is None or sample >= n:
        return None
    return np.sort(rng.choice(n, int(sample), replace=False))


def knn_graphs(
    mats: list[np.ndarray], k: int, be: Backend, queries: np.ndarray | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each representation's k-NN graph (indices, similarities), built once, with progress."""
    n = mats[0].shape[0]
    q = n if queries is None else queries.size
    flops = 2.0 * q * n * sum(int(m.shape[1]) for m in mats)
    graphs = []
    with Work("k-NN graphs", len(mats), flops, be) as work:
        for X in mats:
            graphs.append(be.topk(float32_unit_rows(X), k, queries=queries))
            work.advance(1)
    return graphs


def knn_report(
    ref_a: str,
    ref_b: str,
    *,
    k: int = 10,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
    space: str = "raw",
) -> KnnReport:
    """The `mgap knn` report: k, n, mutual_knn, cknna, chance = k/(n−1).

    REFs are read in float32; each k-NN graph is one blocked pass of float32 products with
    top-k on the backend (the score block never leaves the device). `sample=N` finds the
    neighbours (among all n) of N seeded query rows only: mutual k-NN is then the mean
    over those queries with a 95 % bootstrap interval, and CKNNA, which needs every row's
    neighbours, is not computed. `space` is the per-layer space of a `REF@LAYER`."""
    _, (X, Y), names = align_refs([ref_a, ref_b], np.float32, space)
    check_k(X, Y, k, minimum_k=2)
    n = X.shape[0]
    be = backend or resolve_backend("cpu")
    rng = np.random.default_rng(seed)
    queries = pick_queries(n, sample, rng)
    q = n if queries is None else queries.size
    (ia, sa), (ib, sb) = knn_graphs([X, Y], k, be, queries)
    head = {"names": names, "k": k, "n": n, "chance": k / (n - 1)}
    head["compute"] = Compute.build(**be.describe())
    if queries is None:
        return KnnReport.build(
            **head,
            mutual_knn=graph_mutual(ia, ib),
            cknna=graph_cknna(ia, sa, ib, sb),
            estimate=Estimate.build(mode="exact", n=n),
        )
    per_query = shared_neighbours(ia, ib).mean(axis=1)
    low, high = bootstrap_mean(per_query, rng)
    estimate = Estimate.build(
        **sampled_info(q, seed, "query rows"),
        interval={"mutual_knn": [low, high]},
        note=SAMPLED_NOTE,
    )
    return KnnReport.build(
        **head, mutual_knn=float(per_query.mean()), cknna=None, estimate=estimate
    )
