"""Image<->text retrieval with CLIP_benchmark hit-rate semantics, by counting, never sorting.

A query's right candidates are its image (text->image) or its captions (image->text);
t2i R@k is the share of captions whose image is in the top k, i2t R@k the share of
images with any of their captions in the top k. For each query we count the wrong
candidates that score above its best right one (`above`) and those that tie with it
(`tied`, within TIE_TOL: float32 rounding cannot order them). Ties are broken at random,
in expectation: with g above, t tied wrong and q tied right candidates, the query is a hit
at k with probability 1 - C(t, k-g) / C(t+q, k-g), and its expected rank is
g + 1 + t/(q+1). Without ties this is the plain rank; a collapsed model whose scores all
tie gets chance recall, neither 0 nor a perfect 1; identical duplicate captions (common in
real data) share the credit instead of depending on row order.

Scores come from float32 matrix products in 2-D tiles (a block of images against a block of
captions): one pass gives both directions, memory stays at one tile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.gap import check_pairs
from mgap.engine.measures.sampling import bootstrap_mean
from mgap.engine.measures.scores import ATMG_ANGLE, Prepared, Score

#: scores this close to the right candidate's are ties (float32 dot products of unit rows)
TIE_TOL = 1e-6


@dataclass(frozen=True)
class Ranks:
    """Per query: wrong candidates above and tied with the best right one, right ones tied.

    Queries with no right candidate (an image without captions) have `valid` False.
    """

    above: np.ndarray
    tied: np.ndarray
    right_tied: np.ndarray
    valid: np.ndarray

    def subset(self, mask: np.ndarray) -> Ranks:
        return Ranks(self.above[mask], self.tied[mask], self.right_tied[mask], self.valid[mask])

    def hit_probability(self, k: int) -> np.ndarray:
        """P(a right candidate is in the top k) per valid query, ties broken at random."""
        above, tied, right = (a[self.valid] for a in (self.above, self.tied, self.right_tied))
        slots = np.clip(k - above, 0, None)  # places left in the top k after those above
        hit = (slots > 0).astype(np.float64)
        partial = (slots > 0) & (slots <= tied)  # the cut falls inside the tied group
        miss = np.ones(int(partial.sum()))
        s, t, q = slots[partial], tied[partial], right[partial]
        for i in range(int(s.max(initial=0))):
            step = i < s
            miss[step] *= (t[step] - i) / (t[step] + q[step] - i)
        hit[partial] = 1.0 - miss
        return hit

    def expected_rank(self) -> np.ndarray:
        v = self.valid
        return self.above[v] + 1.0 + self.tied[v] / (self.right_tied[v] + 1.0)


def caption_slices(index: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Captions ordered by image, and where each image's captions start in that order."""
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(n_images + 1))
    return order, starts


@dataclass
class _Tally:
    """Running counts of `retrieval_ranks`: per caption (t2i) and per image (i2t), the wrong
    candidates above and at least tied with the query's threshold, and the right ones tied."""

    t2i_above: np.ndarray
    t2i_atleast: np.ndarray
    i2t_above: np.ndarray
    i2t_atleast: np.ndarray
    i2t_right: np.ndarray

    @classmethod
    def zeros(cls, n: int, m: int) -> _Tally:
        return cls(*(np.zeros(size, np.int64) for size in (m, m, n, n, n)))

    def add(self, counts: tuple, lo: int, hi: int, c0: int, c1: int) -> None:
        above, atleast, row_above, row_atleast = counts
        self.t2i_above[c0:c1] += above
        self.t2i_atleast[c0:c1] += atleast
        self.i2t_above[lo:hi] += row_above
        self.i2t_atleast[lo:hi] += row_atleast

    def remove_right(self, own, mine, owner, t2i_bounds, i2t_bounds) -> None:
        """Take the right candidates' own cells `own` (captions `mine` of images `owner`)
        out of the wrong candidates' counts, and count the right ones tied."""
        (t2i_low, t2i_high), (i2t_low, i2t_high) = t2i_bounds, i2t_bounds
        self.t2i_above[mine] -= own > t2i_high[mine]
        self.t2i_atleast[mine] -= own >= t2i_low[mine]
        np.subtract.at(self.i2t_above, owner, own > i2t_high[owner])
        right = own >= i2t_low[owner]
        np.subtract.at(self.i2t_atleast, owner, right)
        np.add.at(self.i2t_right, owner, right)

    def ranks(self, index: np.ndarray, n: int, m: int) -> tuple[Ranks, Ranks]:
        has_caption = np.bincount(index, minlength=n) > 0
        # the best right candidate is tied with itself even if its tile rounded it differently
        i2t_right = np.where(has_caption, np.maximum(self.i2t_right, 1), 0)
        i2t = Ranks(self.i2t_above, self.i2t_atleast - self.i2t_above, i2t_right, has_caption)
        tied = self.t2i_atleast - self.t2i_above
        t2i = Ranks(self.t2i_above, tied, np.ones(m, dtype=np.int64), np.ones(m, bool))
        return i2t, t2i


def retrieval_ranks(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    *,
    block: int | None = None,
    cols: int | None = None,
    backend: Backend | None = None,
    progress: Callable[[int], None] | None = None,
    score: Score | None = None,
    prepared: Prepared | None = None,
) -> tuple[Ranks, Ranks]:
    """(image->text ranks per image, text->image ranks per caption), by tiled counting.

    Each query's threshold is its right candidate's score (an image's best caption), taken
    from the paired dot products, so a tile of `block` image rows x `cols` captions is
    counted on its own. The right candidates' own cells are taken from the tiles and
    removed from the counts of wrong candidates, so the two computations never disagree.
    `progress(rows)` is called after each block of image rows; `score` defaults to cosine.
    `prepared` gives rows already prepared for the score (no copy is made then).
    """
    index = check_pairs(X, Y, text_image_index)
    be = backend or resolve_backend("cpu")
    prepared = prepared or (score or Score()).prepare(X, Y)
    n, m = X.shape[0], Y.shape[0]
    positive = prepared.paired(index)
    t2i_low, t2i_high = positive - TIE_TOL, positive + TIE_TOL
    best = np.full(n, np.inf, dtype=np.float32)  # an image's best caption score
    best[index] = -np.inf
    np.maximum.at(best, index, positive)
    i2t_low, i2t_high = best - TIE_TOL, best + TIE_TOL
    order, starts = caption_slices(index, n)
    tally = _Tally.zeros(n, m)
    images, captions = be.put(prepared.A), be.put(prepared.B)
    for lo, hi, c0, c1, products in be.tiles(images, captions, block, cols):
        scores = prepared.finish_(products, lo, hi, c0, c1)
        counts = be.count_block(
            scores, t2i_low[c0:c1], t2i_high[c0:c1], i2t_low[lo:hi], i2t_high[lo:hi]
        )
        tally.add(counts, lo, hi, c0, c1)
        # the right candidates in this tile: captions c0..c1 of images lo..hi
        mine = order[starts[lo] : starts[hi]]
        mine = mine[(mine >= c0) & (mine < c1)]
        own = be.take(scores, index[mine] - lo, mine - c0)
        tally.remove_right(own, mine, index[mine], (t2i_low, t2i_high), (i2t_low, i2t_high))
        if progress is not None and c1 == m:
            progress(hi - lo)
    return tally.ranks(index, n, m)


def score_ranks(
    X: np.ndarray, Y: np.ndarray, text_image_index: np.ndarray, score: Score, **kwargs
) -> tuple[Ranks, Ranks]:
    """`retrieval_ranks` under `score`; ATMG's angle differs per direction, so it takes one
    pass for image->text and one for text->image."""
    if score.name != ATMG_ANGLE:
        return retrieval_ranks(X, Y, text_image_index, score=score, **kwargs)
    i2t, _ = retrieval_ranks(X, Y, text_image_index, score=score.for_direction("i2t"), **kwargs)
    _, t2i = retrieval_ranks(X, Y, text_image_index, score=score.for_direction("t2i"), **kwargs)
    return i2t, t2i


def summarise_ranks(ranks: Ranks, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """{"R@k" fractions..., "median_rank", "mean_rank", "n"} over the valid queries."""
    n = int(ranks.valid.sum())
    out: dict = {
        f"R@{int(k)}": (float(ranks.hit_probability(int(k)).mean()) if n else None) for k in ks
    }
    expected = ranks.expected_rank()
    out["median_rank"] = float(np.median(expected)) if n else None
    out["mean_rank"] = float(expected.mean()) if n else None
    out["n"] = n
    return out


def retrieval_metrics(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 10),
    block: int | None = None,
    score: Score | None = None,
) -> dict:
    """{"i2t": {...}, "t2i": {...}} with R@k as fractions, median and mean rank."""
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"recall cut-offs must be >= 1, got {list(ks)}")
    i2t, t2i = score_ranks(X, Y, text_image_index, score or Score(), block=block)
    return {"i2t": summarise_ranks(i2t, ks), "t2i": summarise_ranks(t2i, ks)}


def with_interval(ranks: Ranks, rng: np.random.Generator, ks: Sequence[int] = (1, 5, 10)):
    """summarise_ranks plus a 95 % bootstrap interval per R@k (sampled queries)."""
    out = summarise_ranks(ranks, ks)
    out["interval"] = {
        f"R@{k}": list(bootstrap_mean(ranks.hit_probability(int(k)), rng)) for k in ks
    }
    return out
