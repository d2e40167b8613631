"""Retrieval recall from a seeded sample of queries, ranked against the *whole* gallery.

Recall depends on the gallery size, so sampling the gallery would change the quantity;
sampling the queries does not: N images are ranked against every caption (i2t) and N
captions against every image (t2i), at N/n of the exact cost. Each query's hit
probability is exact (ties broken at random, in expectation, as in `retrieval`), so
R@k is a mean of N i.i.d. values and its 95 % interval is a percentile bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mgap.engine.compute.backend import Backend
from mgap.engine.measures.retrieval import TIE_TOL, Ranks, caption_slices
from mgap.engine.measures.scores import Prepared


def _query_rows(n: int, sample: int, rng: np.random.Generator, allowed: np.ndarray) -> np.ndarray:
    candidates = np.flatnonzero(allowed)
    if sample >= candidates.size:
        return candidates
    return np.sort(rng.choice(candidates, sample, replace=False))


def sampled_ranks(
    prepared: Prepared,
    index: np.ndarray,
    sample: int,
    seed: int,
    backend: Backend,
    progress: Callable[[int], None] | None = None,
) -> tuple[Ranks, np.ndarray, Ranks, np.ndarray]:
    """(i2t ranks, their image rows, t2i ranks, their caption rows) for `sample` seeded
    queries per direction. The score must be symmetric in its two sides (cosine, Lorentz
    distance): caption queries are scored as rows against the images."""
    Xn, Yn = prepared.A, prepared.B
    rng = np.random.default_rng(seed)
    n, m = Xn.shape[0], Yn.shape[0]
    has_caption = np.bincount(index, minlength=n) > 0
    img_q = _query_rows(n, sample, rng, has_caption)
    cap_q = _query_rows(m, sample, rng, np.ones(m, dtype=bool))
    order, starts = caption_slices(index, n)
    positive = prepared.paired(index)

    # image -> text: each sampled image against every caption
    best = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(best, index, positive)
    best = best[img_q]
    mine = np.concatenate([order[starts[r] : starts[r + 1]] for r in img_q])
    owner = np.repeat(np.arange(img_q.size), starts[img_q + 1] - starts[img_q])
    i2t = _ranks(
        backend, backend.put(Xn[img_q]), backend.put(Yn), prepared, best, owner, mine, progress
    )

    # text -> image: each sampled caption against every image (a symmetric score)
    own_image = index[cap_q]
    t2i = _ranks(
        backend,
        backend.put(Yn[cap_q]),
        backend.put(Xn),
        prepared,
        positive[cap_q],
        np.arange(cap_q.size),
        own_image,
        progress,
    )
    return i2t, img_q, t2i, cap_q


def _ranks(
    backend: Backend,
    queries: Any,
    gallery: Any,
    prepared: Prepared,
    best: np.ndarray,
    owner: np.ndarray,
    right: np.ndarray,
    progress: Callable[[int], None] | None,
) -> Ranks:
    """Ranks of queries against a gallery: `best` is each query's right-candidate score,
    `right[i]` a right gallery row of query `owner[i]` (its cells are taken from the tiles
    and counted apart from the wrong candidates)."""
    q = int(queries.shape[0])
    low, high = best - TIE_TOL, best + TIE_TOL
    above, atleast, tied_right = (np.zeros(q, np.int64) for _ in range(3))
    by_owner = np.argsort(owner, kind="stable")
    owner_sorted, right_sorted = owner[by_owner], right[by_owner]
    m = int(gallery.shape[0])
    for lo, hi, c0, c1, products in backend.tiles(queries, gallery):
        S = prepared.finish_(products, lo, hi)
        row_above, row_atleast = backend.count_rows(S, low[lo:hi], high[lo:hi])
        above[lo:hi] += row_above
        atleast[lo:hi] += row_atleast
        a, b = np.searchsorted(owner_sorted, (lo, hi))
        rows, cols = owner_sorted[a:b], right_sorted[a:b]
        keep = (cols >= c0) & (cols < c1)
        rows, cols = rows[keep], cols[keep]
        own = backend.take(S, rows - lo, cols - c0)
        np.subtract.at(above, rows, own > high[rows])
        hit = own >= low[rows]
        np.subtract.at(atleast, rows, hit)
        np.add.at(tied_right, rows, hit)
        if progress is not None and c1 == m:
            progress(hi - lo)
    tied_right = np.maximum(tied_right, 1)  # the best right candidate ties with itself
    return Ranks(above, atleast - above, tied_right, np.ones(q, dtype=bool))
