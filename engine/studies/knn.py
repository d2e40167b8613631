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


def knn_report(
    ref_a: str,
    ref_b: str,
    *,
    k: int = 10,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> KnnReport:
    """The `mgap knn` report: k, n, mutual_knn, cknna, chance = k/(n−1).

    REFs are read in float32; each k-NN graph is one blocked pass of float32 products with
    top-k on the backend (the score block never leaves the device). `sample=N` finds the
    neighbours (among all n) of N seeded query rows only: mutual k-NN is then the mean
    over those queries with a 95 % bootstrap interval, and CKNNA, which needs every row's
    neighbours, is not computed."""
    _, (X, Y), names = align_refs([ref_a, ref_b], np.float32)
    check_k(X, Y, k, minimum_k=2)
    n = X.shape[0]
    be = backend or resolve_backend("cpu")
    rng = np.random.default_rng(seed)
    queries = None
    if sample is not None and sample < n:
        queries = np.sort(rng.choice(n, int(sample), replace=False))
    q = n if queries is None else queries.size
    flops = 2.0 * q * n * (X.shape[1] + Y.shape[1])
    with Work("k-NN graphs", 2, flops, be) as work:
        ia, sa = be.topk(float32_unit_rows(X), k, queries=queries)
        work.advance(1)
        ib, sb = be.topk(float32_unit_rows(Y), k, queries=queries)
        work.advance(1)
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
