"""Fused kernels over one float32 score tile on the CPU: threshold counts and top-k.

Retrieval compares each score with four thresholds (two per column for text->image, two
per row for image->text). As separate numpy comparisons that is eight passes over the tile
and cost as much as the matrix product itself; here one pass reads each score once and
keeps the counts in registers and in one column array, so counting adds about a tenth to
the product. k-NN likewise keeps each row's k best in a small buffer in one pass, where
`np.argpartition` wrote an index array for every cell. The kernels are serial on purpose: a
parallel one woke its own thread pool between BLAS calls, and on two cores the two pools
slowed each other. Compiled by numba (already a dependency of umap-learn) on first use and
cached on disk; imported only when needed; they release the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, boundscheck=False, nogil=True)
def _tile_counts(S, col_low, col_high, row_low, row_high, cols_out, rows_out):
    rows, cols = S.shape
    above = np.zeros(cols, np.int32)
    atleast = np.zeros(cols, np.int32)
    for i in range(rows):
        high, low = row_high[i], row_low[i]
        n_above, n_atleast = 0, 0
        row = S[i]
        for j in range(cols):
            s = row[j]
            above[j] += s > col_high[j]
            atleast[j] += s >= col_low[j]
            n_above += s > high
            n_atleast += s >= low
        rows_out[0, i] += n_above
        rows_out[1, i] += n_atleast
    for j in range(cols):
        cols_out[0, j] += above[j]
        cols_out[1, j] += atleast[j]


@njit(cache=True, boundscheck=False, nogil=True)
def _row_counts(S, row_low, row_high, rows_out):
    rows, cols = S.shape
    for i in range(rows):
        high, low = row_high[i], row_low[i]
        n_above, n_atleast = 0, 0
        row = S[i]
        for j in range(cols):
            s = row[j]
            n_above += s > high
            n_atleast += s >= low
        rows_out[0, i] += n_above
        rows_out[1, i] += n_atleast


def tile_counts(
    S: np.ndarray,
    col_low: np.ndarray,
    col_high: np.ndarray,
    row_low: np.ndarray,
    row_high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """((2, cols) per column: scores above `col_high`, at least `col_low`; (2, rows) per row:
    above `row_high`, at least `row_low`), as int64."""
    cols_out = np.zeros((2, S.shape[1]), np.int64)
    rows_out = np.zeros((2, S.shape[0]), np.int64)
    _tile_counts(S, col_low, col_high, row_low, row_high, cols_out, rows_out)
    return cols_out, rows_out


def row_counts(S: np.ndarray, row_low: np.ndarray, row_high: np.ndarray) -> np.ndarray:
    """(2, rows) per row: scores above `row_high`, at least `row_low`, as int64."""
    rows_out = np.zeros((2, S.shape[0]), np.int64)
    _row_counts(S, row_low, row_high, rows_out)
    return rows_out


@njit(cache=True, boundscheck=False, nogil=True)
def _top_k(S, k, skip, idx_out, val_out):
    rows, cols = S.shape
    for i in range(rows):
        row, ids, vals = S[i], idx_out[i], val_out[i]
        filled, worst = 0, 0
        for j in range(cols):
            if j == skip[i]:
                continue
            v = row[j]
            if filled < k:
                ids[filled], vals[filled] = j, v
                filled += 1
                if filled < k:
                    continue
            elif v > vals[worst]:
                ids[worst], vals[worst] = j, v
            else:
                continue
            worst = 0  # the lowest value; among equal ones the highest column goes first
            for t in range(1, k):
                if vals[t] < vals[worst] or (vals[t] == vals[worst] and ids[t] > ids[worst]):
                    worst = t
        order = np.argsort(ids)
        ids[:] = ids[order]
        vals[:] = vals[order]


def top_k(S: np.ndarray, k: int, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices sorted by index, their float32 scores), each (rows, k): every row's k
    highest columns, leaving out column `skip[i]` (its own; -1 for none). Ties keep the
    lower column."""
    idx = np.empty((S.shape[0], k), np.int64)
    vals = np.empty((S.shape[0], k), np.float32)
    _top_k(S, k, np.ascontiguousarray(skip, dtype=np.int64), idx, vals)
    return idx, vals
