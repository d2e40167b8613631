"""`mgap cka|knn A@all B@all`: alignment across depth, every layer of A against every
layer of B, as a `LayerMatrixReport` (docs/metrics.md "Alignment across depth").

Each layer's costly part is built once and every pair is read from it: linear CKA builds
each layer's centred n x n Gram once and takes all pairs' inner products from the stacked
Grams (`cka.gram_cka_matrix`); RBF CKA streams every layer's kernel blocks once
(`rbf_blocked`); `--sample` draws one set of rows for every layer (`cka_sample`); k-NN
builds each layer's neighbour graph once and intersects the graphs per pair.
"""

from __future__ import annotations

import math

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.cka import centred_grams, gram_cka_matrix
from mgap.engine.measures.cka_sample import sampled_cka
from mgap.engine.measures.knn import check_k, graph_cknna, graph_mutual, shared_neighbours
from mgap.engine.measures.rbf_blocked import rbf_cka_matrix
from mgap.engine.measures.sampling import bootstrap_mean, sampled_info
from mgap.engine.reports.analysis import Compute, Estimate
from mgap.engine.reports.layer_matrix import LayerMatrixReport, LayerPair
from mgap.engine.studies.cka import rbf_flops, validate_options
from mgap.engine.studies.knn import SAMPLED_NOTE, knn_graphs, pick_queries
from mgap.engine.studies.refs import LayerStack, align_stacks
from mgap.engine.studies.work import Work

#: linear CKA holds every layer's n x n float32 Gram; above this, --sample or RBF (blocked)
GRAM_BYTES = 8 * 1024**3


def _plain(M: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(M)]


def best_pair(M: np.ndarray, rows: list[int], columns: list[int]) -> LayerPair | None:
    """The highest cell (the first in row-major order on ties; NaN cells never win)."""
    M = np.asarray(M, dtype=np.float64)
    if not np.isfinite(M).any():
        return None
    flat = int(np.argmax(np.where(np.isfinite(M), M, -np.inf)))
    i, j = divmod(flat, M.shape[1])
    return LayerPair.build(row=rows[i], column=columns[j], value=float(M[i, j]))


def _head(a: LayerStack, b: LayerStack | None, space: str, measure: str, be: Backend) -> dict:
    other = b or a
    return {
        "measure": measure,
        "names": [a.name, other.name],
        "space": space,
        "n": int(a.mats[0].shape[0]),
        "dims": [int(a.mats[0].shape[1]), int(other.mats[0].shape[1])],
        "rows": list(a.layers),
        "columns": list(other.layers),
        "compute": Compute.build(**be.describe()),
    }


def _cross(M: np.ndarray, la: int, split: bool) -> np.ndarray:
    """The rows-of-A x columns-of-B block of a matrix over A's layers then B's."""
    return M[:la, la:] if split else M[:la, :la]


def _check_gram_memory(n: int, layers: int) -> None:
    need = layers * n * n * 4
    if need > GRAM_BYTES:
        raise UsageError(
            f"exact linear CKA of {layers} layers at n = {n} holds {need / 1024**3:.1f} GiB "
            f"of Gram matrices (limit {GRAM_BYTES / 1024**3:.0f} GiB)",
            hint="estimate it with --sample N, or use --kernel rbf (built in row blocks)",
        )


def layer_cka_report(
    ref_a: str,
    ref_b: str,
    *,
    kernel: str = "linear",
    unbiased: bool = False,
    sigma: float | None = None,
    batch_size: int | None = None,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
    space: str = "raw",
) -> LayerMatrixReport:
    """CKA of every layer of `ref_a` with every layer of `ref_b`: exact (linear from Grams
    built once, RBF in row blocks), or with `sample` an estimate from one seeded set of rows
    shared by every layer, each cell with its 95 % interval."""
    validate_options(kernel, sigma, batch_size, sample, 2)
    if batch_size is not None:
        raise UsageError(
            "--batch-size (minibatch CKA) draws new kernels per pair, so it takes no @all REF",
            hint="leave --batch-size out (exact) or use --sample N",
        )
    a, b = align_stacks(ref_a, ref_b, np.float32, space)
    be = backend or resolve_backend("cpu")
    head = _head(a, b, space, "cka", be)
    n, la = head["n"], len(a.layers)
    if unbiased and n < 4:
        raise UsageError(f"unbiased CKA needs at least 4 shared rows, got {n}")
    compute = head.pop("compute")
    head |= {"estimator": "unbiased" if unbiased else "biased", "kernel": kernel}
    mats = a.mats + (b.mats if b is not None else [])
    if sample is not None and sample < n:
        part = sampled_cka(
            mats, kernel=kernel, unbiased=unbiased, sigma=sigma, sample=sample, seed=seed,
            backend=be,
        )  # fmt: skip
        M = _cross(np.asarray(part["matrix"]), la, b is not None)
        cells = _cross(np.asarray(part["estimate"]["interval"]["matrix"]), la, b is not None)
        part["estimate"]["interval"] = {"matrix": cells.tolist()}
        estimate = Estimate.build(**part["estimate"])
        sigmas = part.get("sigma")
    elif kernel == "linear":
        _check_gram_memory(n, len(mats))
        grams = centred_grams(a.mats)
        other = centred_grams(b.mats) if b is not None else None
        M, sigmas = gram_cka_matrix(grams, other, unbiased=unbiased), None
        estimate = Estimate.build(mode="exact", n=n)
    else:
        with Work("exact RBF CKA", n, rbf_flops(mats, n, sigma), be) as work:
            full, sigmas = rbf_cka_matrix(
                mats, backend=be, sigma=sigma, unbiased=unbiased, progress=work.advance
            )
        M, estimate = _cross(np.asarray(full), la, b is not None), Estimate.build(mode="exact", n=n)
    extra = {}
    if sigmas is not None:
        extra["sigma"] = {"rows": sigmas[:la], "columns": sigmas[la:] if b is not None else sigmas}
    return LayerMatrixReport.build(
        **head, matrix=_plain(M), best=best_pair(M, head["rows"], head["columns"]),
        **extra, estimate=estimate, compute=compute,
    )  # fmt: skip


def layer_knn_report(
    ref_a: str,
    ref_b: str,
    *,
    k: int = 10,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
    space: str = "raw",
) -> LayerMatrixReport:
    """Mutual k-NN (and CKNNA when exact) of every layer pair, each layer's neighbour graph
    built once; `sample` takes the same seeded query rows for every layer, with a 95 %
    bootstrap interval per cell."""
    a, b = align_stacks(ref_a, ref_b, np.float32, space)
    other = b or a
    check_k(a.mats[0], other.mats[0], k, minimum_k=2)
    be = backend or resolve_backend("cpu")
    head = _head(a, b, space, "mutual_knn", be)
    n, la, lb = head["n"], len(a.layers), len(other.layers)
    compute = head.pop("compute")
    head |= {"estimator": "mutual-knn", "k": k, "chance": k / (n - 1)}
    rng = np.random.default_rng(seed)
    queries = pick_queries(n, sample, rng)
    graphs = knn_graphs(a.mats + (b.mats if b is not None else []), k, be, queries)
    ga, gb = graphs[:la], (graphs[la:] if b is not None else graphs)
    M = np.empty((la, lb))
    if queries is None:
        C = np.empty((la, lb))
        for i in range(la):
            for j in range(lb):
                M[i, j] = graph_mutual(ga[i][0], gb[j][0])
                C[i, j] = graph_cknna(*ga[i], *gb[j])
        return LayerMatrixReport.build(
            **head, matrix=_plain(M), cknna=_plain(C),
            best=best_pair(M, head["rows"], head["columns"]),
            best_cknna=best_pair(C, head["rows"], head["columns"]),
            estimate=Estimate.build(mode="exact", n=n), compute=compute,
        )  # fmt: skip
    cells = [[None] * lb for _ in range(la)]
    for i in range(la):
        for j in range(lb):
            per_query = shared_neighbours(ga[i][0], gb[j][0]).mean(axis=1)
            M[i, j] = per_query.mean()
            cells[i][j] = list(bootstrap_mean(per_query, rng))
    estimate = Estimate.build(
        **sampled_info(queries.size, seed, "query rows"),
        interval={"matrix": cells},
        note=SAMPLED_NOTE,
    )
    return LayerMatrixReport.build(
        **head, matrix=_plain(M), best=best_pair(M, head["rows"], head["columns"]),
        estimate=estimate, compute=compute,
    )  # fmt: skip
