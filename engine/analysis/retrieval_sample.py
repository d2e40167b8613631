"""Retrieval recall from a seeded sample of queries, ranked against the *whole* gallery.

Recall depends on the gallery size, so sampling the gallery would change the quantity;
sampling the queries does not: N images are ranked against every caption (i2t) and N
captions against every image (t2i), at N/n of the exact cost. Each query's hit
probability is exact (ties broken at random, in expectation, as in `retrieval`), so
R@k is a mean of N i.i.d. values and its 95 % interval is a percentile bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mgap.engine.analysis.backend import Backend
from mgap.engine.analysis.retrieval import TIE_TOL, Ranks, _caption_slices
from mgap.engine.analysis.scores import Prepared


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
    order, starts = _caption_slices(index, n)
    captions, images = backend.put(Yn), backend.put(Xn)

    # image -> text: each sampled image against every caption
    above, tied, right = (np.zeros(img_q.size, np.int64) for _ in range(3))
    queries = backend.put(Xn[img_q])
    for lo, hi, products in backend.products(queries, captions):
        S = prepared.finish_(products, lo, hi)
        rows = img_q[lo:hi]
        counts = starts[rows + 1] - starts[rows]
        local = np.repeat(np.arange(hi - lo), counts)
        mine = np.concatenate([order[starts[r] : starts[r + 1]] for r in rows])
        own = backend.take(S, local, mine)
        best = np.full(hi - lo, -np.inf, dtype=np.float32)
        np.maximum.at(best, local, own)
        above[lo:hi], atleast = backend.count_rows(S, best, TIE_TOL)
        right[lo:hi] = np.bincount(local, weights=own >= best[local] - TIE_TOL, minlength=hi - lo)
        tied[lo:hi] = atleast - above[lo:hi] - right[lo:hi]
        if progress is not None:
            progress(hi - lo)
    i2t = Ranks(above, tied, right, np.ones(img_q.size, dtype=bool))

    # text -> image: each sampled caption against every image
    above, tied = np.zeros(cap_q.size, np.int64), np.zeros(cap_q.size, np.int64)
    queries = backend.put(Yn[cap_q])
    for lo, hi, products in backend.products(queries, images):
        S = prepared.finish_(products, lo, hi)
        own = backend.take(S, np.arange(hi - lo), index[cap_q[lo:hi]])
        above[lo:hi], atleast = backend.count_rows(S, own, TIE_TOL)
        tied[lo:hi] = atleast - above[lo:hi] - 1  # the own image is in the band
        if progress is not None:
            progress(hi - lo)
    ones = np.ones(cap_q.size, dtype=np.int64)
    t2i = Ranks(above, tied, ones, np.ones(cap_q.size, dtype=bool))
    return i2t, img_q, t2i, cap_q
