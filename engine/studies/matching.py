"""Seeded matching of two spaces (Maniparambil et al., CVPR 2024): given a few known pairs
(the base), recover which caption belongs to which image among unpaired queries.

QAP maximises tr(K P L Pᵀ) over permutations P of the queries with the base pairs fixed as
seeds: with centred kernels that is the HSIC of the two spaces. As in the paper's code
(mayug/0-shot-llm-vision, `qap_matching`), both kernels are centred and scaled to unit
Frobenius norm (HSIC-scaled correlation), RBF by default with σ² = the median nonzero squared
distance, FAQ stops at tol 1e-5, and the best objective over 500 randomised restarts wins;
the restarts run in parallel processes. Baselines from the paper: a least-squares map,
relative representations, plain cosine, and local CKA.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend
from mgap.engine.studies.cka import median_sigma, squared_distances
from mgap.engine.studies.local_cka import (
    KERNELS,
    hungarian_accuracy,
    local_cka_scores,
    topk_accuracy,
)

METHODS = ("qap", "local-cka", "linear", "relative", "cosine")
BASE_METHODS = ("kmeans", "random")
DEFAULT_BASE = 320
DEFAULT_QUERY = 100
#: the paper's FAQ settings (0-shot-llm-vision `qap_matching`)
DEFAULT_RESTARTS = 500
FAQ_TOL = 1e-5
DEFAULT_KERNEL = "rbf"


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def select_base(X: np.ndarray, n_base: int, method: str = "kmeans", seed: int = 0) -> np.ndarray:
    """Indices of `n_base` distinct rows: the sample nearest each k-means centroid (a later
    centroid whose nearest sample is taken gets its nearest unused one), or a random subset."""
    n = X.shape[0]
    if not 1 <= n_base <= n:
        raise UsageError(f"base size must be between 1 and {n}, got {n_base}")
    if method == "random":
        return np.sort(np.random.default_rng(seed).choice(n, n_base, replace=False))
    if method != "kmeans":
        raise UsageError(f"unknown base selection {method!r}", hint="use kmeans or random")
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_base, n_init=1, random_state=seed).fit(X)
    C = km.cluster_centers_
    D = np.einsum("ij,ij->i", C, C)[:, None] - 2.0 * C @ X.T + np.einsum("ij,ij->i", X, X)
    chosen: list[int] = []
    used = np.zeros(n, dtype=bool)
    for row in D:
        row = np.where(used, np.inf, row)
        pick = int(np.argmin(row))
        used[pick] = True
        chosen.append(pick)
    return np.asarray(chosen)


def stretch(X: np.ndarray) -> np.ndarray:
    """Divide every dimension by its standard deviation (ddof = 1) over all rows, without
    centring: the paper's `stretch_representations`, applied to the pool that both the base
    and the queries are drawn from (the peer concatenates its base and query pools)."""
    sd = X.std(axis=0, ddof=1)
    return X / np.where(sd > 0, sd, 1.0)


# ---- seeded QAP ------------------------------------------------------------------------------
_QAP: dict = {}


def _qap_init(A: np.ndarray, B: np.ndarray, seeds: np.ndarray) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per process: the restarts are the parallelism
    _QAP.update(A=A, B=B, seeds=seeds)


def _qap_run(
    A: np.ndarray, B: np.ndarray, seeds: np.ndarray, seed: int
) -> tuple[float, np.ndarray]:
    from scipy.optimize import quadratic_assignment

    res = quadratic_assignment(
        A,
        B,
        method="faq",
        options={
            "maximize": True,
            "partial_match": seeds,
            "P0": "randomized",
            "rng": np.random.default_rng(seed),
            "tol": FAQ_TOL,
        },
    )
    return float(res.fun), np.asarray(res.col_ind)


def _qap_restart(seed: int) -> tuple[float, np.ndarray]:
    """A worker's restart on the matrices its initializer received."""
    return _qap_run(_QAP["A"], _QAP["B"], _QAP["seeds"], seed)


def seeded_qap(
    A: np.ndarray,
    B: np.ndarray,
    n_seeds: int,
    *,
    restarts: int = DEFAULT_RESTARTS,
    seed: int = 0,
    workers: int | None = None,
) -> tuple[np.ndarray, float]:
    """Best (col_ind, objective) over `restarts` randomised FAQ runs with nodes 0..n_seeds-1
    of A and B fixed to each other. Restarts run in `workers` processes (default: all cores)."""
    if restarts < 1:
        raise UsageError(f"--restarts must be at least 1, got {restarts}")
    seeds = np.repeat(np.arange(n_seeds)[:, None], 2, axis=1)
    run_seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(restarts)]
    workers = min(restarts, workers or os.cpu_count() or 1)
    if workers == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # n x n products this small lose to BLAS thread start-up
            results = [_qap_run(A, B, seeds, s) for s in run_seeds]
    else:
        context = multiprocessing.get_context(_start_method())
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_qap_init, initargs=(A, B, seeds)
        ) as pool:
            results = list(pool.map(_qap_restart, run_seeds))
    best = max(range(len(results)), key=lambda i: results[i][0])
    return results[best][1], results[best][0]


def _start_method() -> str:
    """fork is fast and safe from a single-threaded CLI; a threaded host (the TUI) gets
    forkserver, whose children do not inherit other threads' locks."""
    return "fork" if threading.active_count() == 1 else "forkserver"


def _backend_squared_distances(Z: np.ndarray, backend: Backend) -> np.ndarray:
    """Squared distances of the rows of Z from one float32 Gram product on `backend`."""
    Zc = Z - Z.mean(axis=0)
    G = backend.matmul(Zc, Zc)
    sq = np.diagonal(G).copy()
    D = sq[:, None] + sq[None, :] - 2.0 * G
    D = np.maximum((D + D.T) / 2.0, 0.0)  # exactly symmetric, as the median assumes
    np.fill_diagonal(D, 0.0)
    return D


def qap_kernel(
    Z: np.ndarray, kernel: str = DEFAULT_KERNEL, backend: Backend | None = None
) -> np.ndarray:
    """The paper's centred, HSIC-scaled correlation HKH / ‖HKH‖_F (`centered_scaled_corr[_rbf]`).

    K is ZZᵀ (linear) or exp(−‖zᵢ − zⱼ‖² / 2σ²) with σ² the median nonzero squared distance
    (rbf). Centring subtracts row and column means, so the n x n centring matrix is never built.
    The n x n product runs on `backend` when one is given (float32), else in float64 numpy:
    n = base + queries is small next to the FAQ restarts, so float64 is the default.
    """
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use linear or rbf")
    Z = np.asarray(Z, dtype=np.float64)
    if kernel == "linear":
        K = Z - Z.mean(axis=0)  # H Z Zᵀ H = (HZ)(HZ)ᵀ
        K = K @ K.T if backend is None else backend.matmul(K, K)
    else:
        D = squared_distances(Z) if backend is None else _backend_squared_distances(Z, backend)
        sigma = median_sigma(D)
        if not sigma > 0:
            raise UsageError("the RBF kernel needs at least two distinct rows on each side")
        D *= -0.5 / sigma**2
        K = np.exp(D, out=D)
        rows = K.mean(axis=1)
        K -= rows[:, None]
        K -= rows[None, :]  # K is symmetric: column means equal row means
        K += rows.mean()
    norm = np.linalg.norm(K)
    return K / norm if norm > 0 else K


def qap_accuracy(
    Xb,
    Yb,
    Xq,
    Yq,
    *,
    kernel: str = DEFAULT_KERNEL,
    restarts: int = DEFAULT_RESTARTS,
    seed: int = 0,
    workers: int | None = None,
    backend: Backend | None = None,
) -> dict:
    """Match shuffled query captions to query images with the base pairs as QAP seeds."""
    b, q = Xb.shape[0], Xq.shape[0]
    shuffle = np.random.default_rng(seed).permutation(q)
    A = qap_kernel(np.vstack([Xb, Xq]), kernel, backend)
    B = qap_kernel(np.vstack([Yb, Yq[shuffle]]), kernel, backend)
    used = min(restarts, workers or os.cpu_count() or 1)
    start = time.perf_counter()
    col, objective = seeded_qap(A, B, b, restarts=restarts, seed=seed, workers=used)
    truth = b + np.argsort(shuffle)  # where query i's caption sits in B
    return {
        "accuracy": float(np.mean(col[b:] == truth)),
        "objective": objective,
        "kernel": kernel,
        "tol": FAQ_TOL,
        "restarts": restarts,
        "workers": used,
        "seconds": time.perf_counter() - start,
    }


# ---- baselines -------------------------------------------------------------------------------
def linear_map_scores(Xb, Yb, Xq, Yq) -> np.ndarray:
    """Cosine between least-squares-mapped queries XqW (W fit on the base) and candidates."""
    W, *_ = np.linalg.lstsq(Xb, Yb, rcond=None)
    return _unit(Xq @ W) @ _unit(Yq).T


def relative_scores(Xb, Yb, Xq, Yq) -> np.ndarray:
    """Cosine between relative representations (each sample's cosines to the base anchors)."""
    rx = _unit(_unit(Xq) @ _unit(Xb).T)
    ry = _unit(_unit(Yq) @ _unit(Yb).T)
    return rx @ ry.T


def cosine_scores(Xq, Yq) -> np.ndarray | None:
    """Plain cosine: only meaningful when both spaces are the same (aligned) space."""
    if Xq.shape[1] != Yq.shape[1]:
        return None
    return _unit(Xq) @ _unit(Yq).T


def _scored(scores: np.ndarray | None) -> dict:
    if scores is None:
        return {"accuracy": None, "note": "dimensions differ: the spaces are not aligned"}
    return {"accuracy": hungarian_accuracy(scores), **topk_accuracy(scores)}


# ---- report ----------------------------------------------------------------------------------
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
) -> dict:
    """The `mgap match --json` document: accuracy (of `method`; of QAP for "all"), n_base,
    n_query, the kernel of QAP and local CKA, and each method's results under `methods`."""
    from mgap.engine.studies.refs import align_refs

    if method not in (*METHODS, "all"):
        raise UsageError(f"unknown method {method!r}", hint=f"use {'|'.join(METHODS)}|all")
    if restarts < 1:
        raise UsageError(f"--restarts must be at least 1, got {restarts}")
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use linear or rbf")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    _, (X, Y), names = align_refs([ref_a, ref_b])
    b, q = _sizes(X.shape[0], n_base, n_query)
    X, Y = _unit(X), _unit(Y)
    base = select_base(X, b, base_method, seed)
    rest = np.setdiff1d(np.arange(X.shape[0]), base)
    query = np.sort(np.random.default_rng(seed).choice(rest, q, replace=False))
    if stretch_dims:
        X, Y = stretch(X), stretch(Y)
    parts = (X[base], Y[base], X[query], Y[query])
    wanted = METHODS if method == "all" else (method,)
    results: dict[str, dict] = {}
    for name in wanted:
        if name == "qap":
            results[name] = qap_accuracy(
                *parts,
                kernel=kernel,
                restarts=restarts,
                seed=seed,
                workers=workers,
                backend=backend,
            )
        elif name == "local-cka":
            results[name] = {**_scored(local_cka_scores(*parts, kernel)), "kernel": kernel}
        elif name == "linear":
            results[name] = _scored(linear_map_scores(*parts))
        elif name == "relative":
            results[name] = _scored(relative_scores(*parts))
        else:
            results[name] = _scored(cosine_scores(parts[2], parts[3]))
    primary = "qap" if method == "all" else method
    return {
        "names": names,
        "n": int(X.shape[0]),
        "n_base": b,
        "n_query": q,
        "method": method,
        "accuracy": results[primary]["accuracy"],
        "chance": 1.0 / q,
        "seed": seed,
        "base_selection": base_method,
        "kernel": kernel,
        "stretch": stretch_dims,
        "stretch_definition": "std_ddof1_over_all_rows_no_centring",
        "methods": results,
    }
