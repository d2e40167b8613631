"""`mgap match`: seeded matching of two REFs (Maniparambil et al., CVPR 2024), as a
`MatchReport`.

The matching methods are measures (`mgap.engine.measures.matching`, `local_cka`); this
study reads the REFs, draws the base (known pairs) and the queries, runs the methods asked
for and reports each one's accuracy beside chance.
"""

from __future__ import annotations

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend
from mgap.engine.measures.local_cka import KERNELS, local_cka_scores
from mgap.engine.measures.matching import (
    DEFAULT_BASE,
    DEFAULT_KERNEL,
    DEFAULT_QUERY,
    DEFAULT_RESTARTS,
    METHODS,
    cosine_scores,
    linear_map_scores,
    qap_accuracy,
    relative_scores,
    scored,
    select_base,
    stretch,
)
from mgap.engine.measures.rows import unit_rows
from mgap.engine.reports.analysis import MatchMethod, MatchReport
from mgap.engine.studies.refs import align_refs

STRETCH_DEFINITION = "std_ddof1_over_all_rows_no_centring"


def _sizes(n: int, n_base: int | None, n_query: int | None) -> tuple[int, int]:
    b = n_base if n_base is not None else min(DEFAULT_BASE, n // 2)
    if n_base is not None and not 2 <= b <= n - 2:
        raise UsageError(
            f"--base {b} must leave at least 2 of the {n} shared images for the queries "
            "(and be at least 2)",
            hint=f"pass --base between 2 and {max(n - 2, 2)}",
        )
    q = n_query if n_query is not None else min(DEFAULT_QUERY, n - b)
    if b < 2 or q < 2 or b + q > n:
        raise UsageError(
            f"base {b} + query {q} must fit in the {n} shared images (each at least 2)",
            hint="lower --base/--query",
        )
    return b, q


def _validate(method: str, restarts: int, kernel: str, workers: int | None) -> None:
    if method not in (*METHODS, "all"):
        raise UsageError(f"unknown method {method!r}", hint=f"use {'|'.join(METHODS)}|all")
    if restarts < 1:
        raise UsageError(f"--restarts must be at least 1, got {restarts}")
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use linear or rbf")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")


def _run_method(name: str, parts: tuple, kernel: str, qap: dict) -> MatchMethod:
    """One method on (base X, base Y, query X, query Y); `qap` holds the FAQ settings."""
    if name == "qap":
        return MatchMethod.build(**qap_accuracy(*parts, kernel=kernel, **qap))
    if name == "local-cka":
        return MatchMethod.build(**scored(local_cka_scores(*parts, kernel)), kernel=kernel)
    if name == "linear":
        return MatchMethod.build(**scored(linear_map_scores(*parts)))
    if name == "relative":
        return MatchMethod.build(**scored(relative_scores(*parts)))
    return MatchMethod.build(**scored(cosine_scores(parts[2], parts[3])))


def match_report(
    ref_a: str,
    ref_b: str,
    *,
    n_base: int | None = None,
    n_query: int | None = None,
    restarts: int = DEFAULT_RESTARTS,
    seed: int = 0,
    method: str = "qap",
    kernel: str = DEFAULT_KERNEL,
    stretch_dims: bool = False,
    base_method: str = "kmeans",
    workers: int | None = None,
    backend: Backend | None = None,
) -> MatchReport:
    """The `mgap match` report: accuracy (of `method`; of QAP for "all"), n_base, n_query,
    the kernel of QAP and local CKA, and each method's results under `methods`."""
    _validate(method, restarts, kernel, workers)
    _, (X, Y), names = align_refs([ref_a, ref_b])
    b, q = _sizes(X.shape[0], n_base, n_query)
    X, Y = unit_rows(X), unit_rows(Y)
    base = select_base(X, b, base_method, seed)
    rest = np.setdiff1d(np.arange(X.shape[0]), base)
    query = np.sort(np.random.default_rng(seed).choice(rest, q, replace=False))
    if stretch_dims:
        X, Y = stretch(X), stretch(Y)
    parts = (X[base], Y[base], X[query], Y[query])
    qap = {"restarts": restarts, "seed": seed, "workers": workers, "backend": backend}
    wanted = METHODS if method == "all" else (method,)
    results = {name: _run_method(name, parts, kernel, qap) for name in wanted}
    return MatchReport.build(
        names=names,
        n=int(X.shape[0]),
        n_base=b,
        n_query=q,
        method=method,
        accuracy=results["qap" if method == "all" else method].accuracy,
        chance=1.0 / q,
        seed=seed,
        base_selection=base_method,
        kernel=kernel,
        stretch=stretch_dims,
        stretch_definition=STRETCH_DEFINITION,
        methods=results,
    )
