"""Fused counting kernels for the CPU: every threshold count of a score tile in one pass.

Retrieval compares each float32 score with four thresholds (two per column for text->image,
two per row for image->text). As separate numpy comparisons that is eight passes over the
tile, single-threaded, and it cost as much as the matrix product itself; here each thread
reads its rows once and keeps the counts in registers and in a per-thread column array, so
counting costs a few per cent of the product. Compiled by numba (already a dependency of
umap-learn) on first use and cached on disk; imported only when a count is needed. Calls
are serialised: numba's fallback thread pool (workqueue) must not be entered by two threads
at once, and the TUI runs analyses in worker threads.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit, prange

_LAUNCH = threading.Lock()


@njit(parallel=True, cache=True, boundscheck=False, nogil=True)
def _tile_counts(S, col_low, col_high, row_low, row_high, threads, cols_out, rows_out):
    rows, cols = S.shape
    above = np.zeros((threads, cols), np.int32)
    atleast = np.zeros((threads, cols), np.int32)
    step = (rows + threads - 1) // threads
    for t in prange(threads):
        t_above, t_atleast = above[t], atleast[t]
        for i in range(t * step, min(rows, (t + 1) * step)):
            high, low = row_high[i], row_low[i]
            n_above, n_atleast = 0, 0
            row = S[i]
            for j in range(cols):
                s = row[j]
                t_above[j] += s > col_high[j]
                t_atleast[j] += s >= col_low[j]
                n_above += s > high
                n_atleast += s >= low
            rows_out[0, i] += n_above
            rows_out[1, i] += n_atleast
    for t in range(threads):
        for j in range(cols):
            cols_out[0, j] += above[t, j]
            cols_out[1, j] += atleast[t, j]


@njit(parallel=True, cache=True, boundscheck=False, nogil=True)
def _row_counts(S, row_low, row_high, rows_out):
    rows, cols = S.shape
    for i in prange(rows):
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
    threads = max(1, min(numba.get_num_threads(), S.shape[0]))
    with _LAUNCH:
        _tile_counts(S, col_low, col_high, row_low, row_high, threads, cols_out, rows_out)
    return cols_out, rows_out


def row_counts(S: np.ndarray, row_low: np.ndarray, row_high: np.ndarray) -> np.ndarray:
    """(2, rows) per row: scores above `row_high`, at least `row_low`, as int64."""
    rows_out = np.zeros((2, S.shape[0]), np.int64)
    with _LAUNCH:
        _row_counts(S, row_low, row_high, rows_out)
    return rows_out
