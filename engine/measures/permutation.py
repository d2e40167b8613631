"""Permutation nulls for alignment scores: how large a score is when the rows of one side
are shuffled, so that row i of X no longer belongs with row i of Y (docs/design.md §7).

The Grams (and k-NN graphs) are built once; a permutation p only re-indexes them:
HSIC(K, L[p][:, p]) = Σ Kc ∘ Lc[p][:, p] with both normalisers unchanged (a permutation
of the rows of Y permutes the rows and columns of its Gram and leaves ‖Lc‖ alone). The
unbiased HSIC (Song et al. 2012) re-indexes the same way: with K̃, L̃ the Grams with a zero
diagonal, 1ᵀL̃1 is unchanged and 1ᵀK̃L̃1 = (K̃1)·(L̃1)[p].

Report: the null mean and sd, p = (1 + #{null ≥ observed}) / (1 + N) (one-sided: an
alignment score is evidence of alignment when it is large), observed − null mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: query rows compared per step of `mutual_overlap` (bounds its temporary to ROWS x k x k)
ROWS = 256


def centred_gram(G: np.ndarray) -> np.ndarray:
    """H G H with H = I − 11ᵀ/n, in place on a float64 array (a copy of anything else)."""
    G = G if G.dtype == np.float64 else G.astype(np.float64)
    G -= G.mean(axis=0, keepdims=True)
    G -= G.mean(axis=1, keepdims=True)
    return G


def linear_gram(X: np.ndarray) -> np.ndarray:
    """X Xᵀ in float64 (the linear kernel)."""
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


def permuted_inner(K: np.ndarray, L: np.ndarray, p: np.ndarray) -> float:
    """Σᵢⱼ K[i, j] · L[p[i], p[j]] in one fused pass (`mgap.engine.compute.permuted`: no
    n x n copy of L[p][:, p] is made; numba compiles it on first use)."""
    from mgap.engine.compute.permuted import permuted_inner as fused

    return fused(K, L, p)


def unbiased_hsic(trace: float, a_sums: np.ndarray, b_sums: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC of zero-diagonal Grams from tr(ÃB̃) and their row sums."""
    n = a_sums.size
    return (
        trace
        + a_sums.sum() * b_sums.sum() / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * float(a_sums @ b_sums)
    ) / (n * (n - 3))


@dataclass
class GramNull:
    """CKA between fixed Grams K and L under permutations of L's rows and columns.

    The Grams are taken over: float64 ones are centred (or, unbiased, their diagonals
    zeroed) in place, so the null holds no copy of an n x n matrix."""

    K: np.ndarray
    L: np.ndarray
    unbiased: bool = False

    def __post_init__(self) -> None:
        n = self.K.shape[0]
        if self.K.shape != (n, n) or self.L.shape != (n, n):
            raise ValueError(
                f"Grams must be square and of one size, got {self.K.shape}, {self.L.shape}"
            )
        if self.unbiased and n < 4:
            raise ValueError(f"unbiased HSIC needs at least 4 rows, got {n}")
        if self.unbiased:
            self.K, self.L = (np.asarray(G, dtype=np.float64) for G in (self.K, self.L))
            np.fill_diagonal(self.K, 0.0)
            np.fill_diagonal(self.L, 0.0)
        else:
            self.K, self.L = centred_gram(self.K), centred_gram(self.L)
        # the fused re-index reads rows in place (a no-op for the Grams built here)
        self.K, self.L = np.ascontiguousarray(self.K), np.ascontiguousarray(self.L)
        self.k_sums, self.l_sums = self.K.sum(axis=1), self.L.sum(axis=1)
        kk = float(np.einsum("ij,ij->", self.K, self.K))
        ll = float(np.einsum("ij,ij->", self.L, self.L))
        if self.unbiased:
            kk = unbiased_hsic(kk, self.k_sums, self.k_sums)
            ll = unbiased_hsic(ll, self.l_sums, self.l_sums)
        self.norm = np.sqrt(kk * ll)

    def cka(self, p: np.ndarray | None = None) -> float:
        """CKA of K against L[p][:, p] (the identity when p is None)."""
        if not self.norm > 0:
            return float("nan")
        if p is None:
            trace, l_sums = float(np.einsum("ij,ij->", self.K, self.L)), self.l_sums
        else:
            trace, l_sums = permuted_inner(self.K, self.L, p), self.l_sums[p]
        hsic = unbiased_hsic(trace, self.k_sums, l_sums) if self.unbiased else trace
        return float(hsic / self.norm)


def null_summary(observed: float, null: np.ndarray) -> dict:
    """{"observed", "mean", "sd", "p_value", "excess"} of an observed score against its null."""
    null = np.asarray(null, dtype=np.float64)
    above = np.count_nonzero(null >= observed - 1e-12 * max(1.0, abs(observed)))
    mean = float(null.mean())
    return {
        "observed": float(observed),
        "mean": mean,
        "sd": float(null.std(ddof=1)) if null.size > 1 else 0.0,
        "p_value": float((1 + above) / (1 + null.size)),
        "excess": float(observed - mean),
    }


def permutation_null(
    statistic: Callable[[np.ndarray | None], float],
    n: int,
    perms: int,
    seed: int,
    draw: Callable[[np.random.Generator], np.ndarray] | None = None,
) -> dict:
    """`statistic(None)` observed, then `statistic(p)` for N seeded permutations of n rows
    (uniform, or drawn by `draw(rng)` from a subgroup)."""
    if perms < 1:
        raise ValueError(f"--permutations must be at least 1, got {perms}")
    rng = np.random.default_rng(seed)
    draw = draw or (lambda r: r.permutation(n))
    null = np.array([statistic(draw(rng)) for _ in range(perms)])
    return {**null_summary(statistic(None), null), "permutations": int(perms), "seed": int(seed)}


def permuted_neighbours(neighbours: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The k-NN lists of Y[p] from those of Y: row i of Y[p] is Y[p[i]], and a neighbour j of
    it in Y is row p⁻¹[j] of Y[p]."""
    inverse = np.empty_like(p)
    inverse[p] = np.arange(p.size)
    return inverse[neighbours[p]]


def mutual_overlap(ia: np.ndarray, ib: np.ndarray) -> float:
    """Mean over rows of |N_A(i) ∩ N_B(i)| / k for (n, k) neighbour lists."""
    shared = 0
    for lo in range(0, ia.shape[0], ROWS):
        a, b = ia[lo : lo + ROWS], ib[lo : lo + ROWS]
        shared += int((a[:, :, None] == b[:, None, :]).any(axis=2).sum())
    return float(shared / ia.size)
