"""Per-query numbers behind `mgap examples`: true-pair cosines, retrieval counts, top-k hits.

A query (an image, or a caption with `--side text`) is scored against the whole other side,
streamed block by block, so only the chosen queries and one gallery block are in memory.
Counting follows `mgap retrieval` exactly (docs/design.md §7): the threshold is the query's
best right candidate; wrong candidates above it and tied with it (within `tol`) are counted
with the same tile kernel, and the right candidates' own cells are taken out of those counts,
so an example's rank is the one its query gets in the full retrieval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: score tiles up to this many cells are counted by numpy (the same float32 comparisons):
#: a few queries then skip the tile kernel's compile-cache load, seconds on a busy CPU
NUMPY_CELLS = 1 << 24


@dataclass(frozen=True)
class GalleryScan:
    """What one pass over the gallery gives for q queries.

    `above`, `tied`, `right_tied`: per query, as `Ranks` in `mgap retrieval` counts them;
    `top_rows`, `top_scores` (q, k): the k best gallery rows, best first; `centroid`: the mean of the gallery's unit rows (float64)."""

    above: np.ndarray
    tied: np.ndarray
    right_tied: np.ndarray
    top_rows: np.ndarray
    top_scores: np.ndarray
    centroid: np.ndarray


def pair_scores(Q: np.ndarray, R: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """float32 score of each right candidate `R[i]` with its query `Q[owner[i]]` (unit rows),
    the same product `mgap retrieval` takes its thresholds from."""
    return np.einsum("ij,ij->i", Q[owner], R).astype(np.float32)


def best_per_query(scores: np.ndarray, owner: np.ndarray, n_queries: int) -> np.ndarray:
    """Each query's best right-candidate score (-inf for a query with none)."""
    best = np.full(n_queries, -np.inf, dtype=np.float32)
    np.maximum.at(best, owner, scores)
    return best


def mean_per_query(scores: np.ndarray, owner: np.ndarray, n_queries: int) -> np.ndarray:
    """Each query's mean right-candidate score (NaN for a query with none)."""
    total = np.bincount(owner, weights=scores.astype(np.float64), minlength=n_queries)
    count = np.bincount(owner, minlength=n_queries)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def centroid_distance(Q: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """Euclidean distance of each unit row to the other side's centroid (mean of unit rows)."""
    return np.linalg.norm(Q.astype(np.float64) - centroid[None, :], axis=1)


def _merge_top(rows: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row of candidates: score descending, then gallery row ascending."""
    order = np.lexsort((rows, -vals.astype(np.float64)), axis=-1)[:, :k]
    return np.take_along_axis(rows, order, 1), np.take_along_axis(vals, order, 1)


def scan_gallery(
    Q: np.ndarray,
    blocks: Iterable[tuple[int, np.ndarray]],
    best: np.ndarray,
    owner: np.ndarray,
    right: np.ndarray,
    *,
    k: int = 0,
    tol: float,
) -> GalleryScan:
    """Count and rank `Q` (q, d unit rows, float32) against gallery `blocks` ((first row,
    unit rows) in row order). `right[i]` is a right gallery row of query `owner[i]` and
    `best` each query's best right score."""
    q = Q.shape[0]
    low = (best - np.float32(tol)).astype(np.float32)
    high = (best + np.float32(tol)).astype(np.float32)
    above, atleast, right_tied = (np.zeros(q, np.int64) for _ in range(3))
    top_rows, top_vals = np.zeros((q, 0), np.int64), np.zeros((q, 0), np.float32)
    total, seen = np.zeros(Q.shape[1], np.float64), 0
    for c0, G in blocks:
        c1 = c0 + G.shape[0]
        S = np.ascontiguousarray(Q @ G.T, dtype=np.float32)
        if S.size <= NUMPY_CELLS:
            above += (high[:, None] < S).sum(1)
            atleast += (low[:, None] <= S).sum(1)
        else:  # numba's import costs a second: only for tiles worth compiling for
            from mgap.engine.compute.tile_kernels import row_counts

            counts = row_counts(S, low, high)
            above += counts[0]
            atleast += counts[1]
        mine = (right >= c0) & (right < c1)
        rows, cols = owner[mine], right[mine] - c0
        own = S[rows, cols]
        np.subtract.at(above, rows, own > high[rows])
        hit = own >= low[rows]
        np.subtract.at(atleast, rows, hit)
        np.add.at(right_tied, rows, hit)
        if k:
            cand = np.broadcast_to(np.arange(c0, c1), S.shape)
            take = min(k, S.shape[1])
            part = np.argpartition(-S, take - 1, axis=1)[:, :take]
            top_rows, top_vals = _merge_top(
                np.concatenate([top_rows, np.take_along_axis(cand, part, 1)], 1),
                np.concatenate([top_vals, np.take_along_axis(S, part, 1)], 1),
                k,
            )
        total += G.sum(0, dtype=np.float64)
        seen += G.shape[0]
    has_right = np.bincount(owner, minlength=q) > 0
    right_tied = np.where(has_right, np.maximum(right_tied, 1), 0)
    return GalleryScan(above, atleast - above, right_tied, top_rows, top_vals, total / max(seen, 1))
