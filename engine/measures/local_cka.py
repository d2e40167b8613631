"""Local-CKA retrieval (Maniparambil et al., CVPR 2024): score a (query, candidate) pair by
CKA(base ∪ {query}, base ∪ {candidate}).

Adding one sample borders the cached base kernel K with a row k and a corner κ, so ⟨K', L'⟩,
the row sums and the total follow from base statistics plus O(b) terms per pair: all
nq x nc scores cost one (nq x b)(b x nc) product instead of nq·nc rebuilt (b+1)² kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mgap.core.errors import UsageError
from mgap.engine.measures.cka import median_sigma, squared_distances

KERNELS = ("linear", "rbf")


@dataclass
class _Side:
    """One space: the base kernel's statistics and the border rows of the new samples."""

    K: np.ndarray  # (b, b) base kernel
    rows: np.ndarray  # K1
    total: float  # 1ᵀK1
    border: np.ndarray  # (m, b): kernel between each new sample and the base
    corner: np.ndarray  # (m,): kernel of each new sample with itself

    @property
    def border_sums(self) -> np.ndarray:
        return self.border.sum(axis=1)


def _side(Zb: np.ndarray, Zn: np.ndarray, kernel: str, sigma: float | None) -> _Side:
    Zb, Zn = np.asarray(Zb, dtype=np.float64), np.asarray(Zn, dtype=np.float64)
    if kernel == "linear":
        mu = Zb.mean(axis=0)  # HSIC ignores a common shift; removing it keeps sums small
        Zb, Zn = Zb - mu, Zn - mu
        K = Zb @ Zb.T
        border, corner = Zn @ Zb.T, np.einsum("ij,ij->i", Zn, Zn)
    else:
        D = squared_distances(Zb)
        if sigma is None:
            sigma = median_sigma(D)
        scale = -0.5 / sigma**2
        K = np.exp(D * scale)
        cross = (
            np.einsum("ij,ij->i", Zn, Zn)[:, None]
            + np.einsum("ij,ij->i", Zb, Zb)[None, :]
            - 2.0 * Zn @ Zb.T
        )
        border, corner = np.exp(np.maximum(cross, 0.0) * scale), np.ones(Zn.shape[0])
    rows = K.sum(axis=1)
    return _Side(K, rows, float(rows.sum()), border, corner)


def _self_hsic(s: _Side, m: int) -> np.ndarray:
    """Biased HSIC(K', K') for every bordered kernel K' (one per new sample)."""
    kk = np.einsum("ij,ij->i", s.border, s.border)
    dot = float(np.vdot(s.K, s.K)) + 2.0 * kk + s.corner**2
    rr = s.rows @ s.rows + 2.0 * (s.border @ s.rows) + kk + (s.border_sums + s.corner) ** 2
    total = s.total + 2.0 * s.border_sums + s.corner
    return dot - 2.0 / m * rr + total**2 / m**2


def local_cka_scores(
    Xb: np.ndarray,
    Yb: np.ndarray,
    Xq: np.ndarray,
    Yc: np.ndarray,
    kernel: str = "linear",
    sigma: tuple[float, float] | None = None,
) -> np.ndarray:
    """(nq, nc) biased CKA of [Xb; Xq[i]] vs [Yb; Yc[j]]. RBF bandwidths default to the
    median base distance per space (fixed, so one added sample does not rescale the kernel)."""
    if kernel not in KERNELS:
        raise UsageError(f"unknown kernel {kernel!r}", hint="use linear or rbf")
    if Xb.shape[0] != Yb.shape[0] or Xb.shape[0] < 2:
        raise UsageError(f"local CKA needs >= 2 paired base rows, got {Xb.shape[0]}/{Yb.shape[0]}")
    sx, sy = sigma if sigma is not None else (None, None)
    a, c = _side(Xb, Xq, kernel, sx), _side(Yb, Yc, kernel, sy)
    m = Xb.shape[0] + 1
    kl = a.border @ c.border.T
    dot = float(np.vdot(a.K, c.K)) + 2.0 * kl + np.outer(a.corner, c.corner)
    rr = (
        a.rows @ c.rows
        + (c.border @ a.rows)[None, :]
        + (a.border @ c.rows)[:, None]
        + kl
        + np.outer(a.border_sums + a.corner, c.border_sums + c.corner)
    )
    ta = a.total + 2.0 * a.border_sums + a.corner
    tc = c.total + 2.0 * c.border_sums + c.corner
    cross = dot - 2.0 / m * rr + np.outer(ta, tc) / m**2
    denom = np.sqrt(np.outer(_self_hsic(a, m), _self_hsic(c, m)))
    return cross / np.where(denom > 0, denom, np.nan)


def hungarian_accuracy(scores: np.ndarray) -> float:
    """Share of queries that a maximum-score one-to-one assignment pairs with candidate i."""
    rows, cols = linear_sum_assignment(np.nan_to_num(scores, nan=-np.inf), maximize=True)
    return float(np.mean(cols[np.argsort(rows)] == np.arange(scores.shape[0])))


def topk_accuracy(scores: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Retrieval hit rates: query i hits when candidate i is among its k best (ties count
    against it)."""
    true = np.diagonal(scores)[:, None]
    rank = (scores >= true).sum(axis=1) - 1
    return {f"top{k}": float(np.mean(rank < k)) for k in ks}


def local_cka_retrieval(
    Xb: np.ndarray, Yb: np.ndarray, Xq: np.ndarray, Yq: np.ndarray, kernel: str = "linear"
) -> dict[str, float]:
    """Queries Xq[i] and candidates Yq[j] (true pairs on the diagonal): top-k and matching."""
    scores = local_cka_scores(Xb, Yb, Xq, Yq, kernel)
    return {"accuracy": hungarian_accuracy(scores), **topk_accuracy(scores)}
