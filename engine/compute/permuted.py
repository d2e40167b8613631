"""A fused kernel for permutation nulls on the CPU: Σᵢⱼ K[i, j] · L[p[i], p[j]] in one pass.

Gathering L[p][:, p] with numpy writes an n x n copy (twice: rows, then columns) and reads
it back for the product, about six n x n passes per permutation; here each row of K is read
once and the matching row of L is indexed in cache, so a permutation costs about two passes.
Serial, like `tile_kernels` (a parallel kernel's thread pool fought BLAS's on two cores);
compiled by numba on first use and cached on disk; releases the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, boundscheck=False, nogil=True)
def _permuted_inner(K, L, p):
    n = p.shape[0]
    total = 0.0
    for i in range(n):
        k_row = K[i]
        l_row = L[p[i]]
        acc = 0.0
        for j in range(n):
            acc += k_row[j] * l_row[p[j]]
        total += acc
    return total


def permuted_inner(K: np.ndarray, L: np.ndarray, p: np.ndarray) -> float:
    """Σᵢⱼ K[i, j] · L[p[i], p[j]] of two C-contiguous float64 n x n matrices."""
    K = np.ascontiguousarray(K, dtype=np.float64)
    L = np.ascontiguousarray(L, dtype=np.float64)
    return float(_permuted_inner(K, L, np.ascontiguousarray(p, dtype=np.intp)))
