"""`mgap cka`: the CKA matrix of two or more REFs (docs/design.md §7), as a `CkaReport`.

The estimators are measures (`mgap.engine.measures.cka`, `rbf_blocked`, `cka_sample`); this
study reads the REFs, picks the one estimator asked for and reports n, d, the estimator and
how exact the numbers are.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.cka import (
    KERNELS,
    check_sigma,
    linear_matrices,
    minibatch_cka,
    pair_matrix,
)
from mgap.engine.measures.cka_sample import GROUPS, check_sample, sampled_cka
from mgap.engine.measures.rbf_blocked import rbf_cka_matrix
from mgap.engine.reports.analysis import CkaReport, Compute, Estimate
from mgap.engine.studies.refs import align_refs
from mgap.engine.studies.work import Work


def validate_options(
    kernel: str, sigma: float | None, batch_size: int | None, sample: int | None, n_refs: int
) -> None:
    if sigma is not None:
        check_sigma(sigma)
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use --kernel linear or rbf")
    if n_refs < 2:
        raise UsageError("cka needs at least two REFs", hint="e.g. clip.h5:image clip.h5:text")
    if sigma is not None and not sigma > 0:
        raise UsageError(f"--sigma must be positive, got {sigma}")
    if batch_size is not None and batch_size < 4:
        raise UsageError(f"--batch-size must be at least 4, got {batch_size}")
    if sample is not None:
        if batch_size is not None:
            raise UsageError(
                "--sample and --batch-size are two different estimators",
                hint="pick one: --sample N estimates the exact CKA, --batch-size is minibatch CKA",
            )
        check_sample(sample)


def cka_report(
    refs: list[str],
    *,
    kernel: str = "linear",
    unbiased: bool = False,
    sigma: float | None = None,
    batch_size: int | None = None,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
    space: str = "raw",
) -> CkaReport:
    """The `mgap cka` report: names, matrix (diagonal 1), n, dims, estimator, kernel, and
    `estimate` (exact, or sampled with its interval).

    The estimator is only ever the one asked for: biased or unbiased (`--unbiased`) exact
    CKA at any n (RBF in row blocks, see `rbf_blocked`), the minibatch estimator when
    `batch_size` is given, or with `sample` an estimate of the exact all-rows value from
    that many seeded rows (`cka_sample`). `space` is the per-layer space of a `REF@LAYER`."""
    validate_options(kernel, sigma, batch_size, sample, len(refs))
    _, mats, names = align_refs(refs, np.float32, space)
    n = mats[0].shape[0]
    if unbiased and n < 4 and batch_size is None:
        raise UsageError(f"unbiased CKA needs at least 4 shared rows, got {n}")
    be = backend or resolve_backend("cpu")
    head = {
        "names": names,
        "n": n,
        "dims": [int(m.shape[1]) for m in mats],
        "kernel": kernel,
        "compute": Compute.build(**be.describe()),
    }
    if batch_size is not None:
        matrix = pair_matrix(
            len(mats), lambda i, j: minibatch_cka(mats[i], mats[j], batch_size, kernel, 0, sigma)
        )
        return CkaReport.build(
            **head, estimator="minibatch-unbiased", batch_size=batch_size, matrix=matrix
        )
    head["estimator"] = "unbiased" if unbiased else "biased"
    if sample is not None and sample < n:
        return _sampled(head, mats, kernel, unbiased, sigma, sample, seed, be)
    return _exact(head, mats, kernel, unbiased, sigma, be)


def _exact(
    head: dict,
    mats: list[np.ndarray],
    kernel: str,
    unbiased: bool,
    sigma: float | None,
    be: Backend,
) -> CkaReport:
    """Exact CKA on every shared row; RBF kernel passes show progress when long."""
    n = mats[0].shape[0]
    estimate = Estimate.build(mode="exact", n=n)
    if kernel == "linear":
        matrix, chance = linear_matrices(mats, unbiased)
        if chance is None:
            return CkaReport.build(**head, estimate=estimate, matrix=matrix)
        return CkaReport.build(**head, estimate=estimate, matrix=matrix, chance=chance)
    with Work("exact RBF CKA", n, rbf_flops(mats, n, sigma), be) as work:
        matrix, sigmas = rbf_cka_matrix(
            mats, backend=be, sigma=sigma, unbiased=unbiased, progress=work.advance
        )
    return CkaReport.build(**head, estimate=estimate, matrix=matrix, sigma=sigmas)


def rbf_flops(mats: list[np.ndarray], n: int, sigma: float | None) -> float:
    """Product flops of the blocked RBF passes on n rows (two passes unless σ is given)."""
    return 2.0 * n * n * sum(int(m.shape[1]) for m in mats) * (1 if sigma else 2)


def _sampled(
    head: dict,
    mats: list[np.ndarray],
    kernel: str,
    unbiased: bool,
    sigma: float | None,
    sample: int,
    seed: int,
    be: Backend,
) -> CkaReport:
    """The estimate from `sample` seeded rows; RBF kernel passes show progress when long."""
    run = partial(
        sampled_cka,
        mats,
        kernel=kernel,
        unbiased=unbiased,
        sigma=sigma,
        sample=sample,
        seed=seed,
        backend=be,
    )
    if kernel == "linear":
        part = run()
    else:
        group = sample // GROUPS
        flops = rbf_flops(mats, sample, sigma) + GROUPS * rbf_flops(mats, group, sigma)
        with Work("sampled RBF CKA", sample + GROUPS * group, flops, be) as work:
            part = run(progress=work.advance)
    part["estimate"] = Estimate.build(**part["estimate"])
    return CkaReport.build(**head, **part)
