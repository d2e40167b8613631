"""The peers' category x category table: mean ‖x̂ᵢ − ŷⱼ‖ over images i of row category a and
captions j of column category b. Quadratic in the store, so it is exact when affordable and
a stated, seeded estimate when not.

- exact: one blocked pass of float32 products on the backend, sums in float64;
- sampled: up to ⌈N / C⌉ rows of every category on each side (seeded), the table of the
  sampled pairs, and a stratified two-sample bootstrap (images and captions resampled
  within their categories, TABLE_BOOTSTRAP times, on the statistic's linear projection)
  giving a 95 % interval per cell.

On the CPU the table is sampled by default once the store has more than EXACT_CELLS
(image, caption) pairs; `exact=True` (`--exact`) forces the full table, and a GPU
backend always computes it exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mgap.engine.compute.backend import Backend
from mgap.engine.compute.reductions import one_hot
from mgap.engine.measures.sampling import (
    exact_info,
    percentile_interval,
    sampled_info,
    stratified_sample,
    stratified_weights,
)

#: (image, caption) pairs above which the CPU samples by default: 2e9 pairs at d = 512 are
#: about 2e12 flops, ~20 s on a 2-core CPU
EXACT_CELLS = 2_000_000_000
#: rows per side sampled by default (spread evenly over the categories)
DEFAULT_SAMPLE = 20_000
#: bootstrap resamples of the sampled table
TABLE_BOOTSTRAP = 1000


def choose_sample(
    n_images: int, n_texts: int, backend: Backend, sample: int | None, exact: bool
) -> int | None:
    """Rows per side to sample, or None for the exact table."""
    if exact:
        return None
    if sample is None and backend.device == "cpu" and n_images * n_texts > EXACT_CELLS:
        return DEFAULT_SAMPLE
    return sample


def table_flops(n_images: int, n_texts: int, dim: int, sample: int | None) -> float:
    """float32 product flops of the table: the full product, or the sample's."""
    if sample is None:
        return 2.0 * n_images * n_texts * dim
    return 2.0 * min(sample, n_images) * min(sample, n_texts) * dim


def pairwise_table(
    X: np.ndarray,
    Y: np.ndarray,
    img_slot: np.ndarray,
    txt_slot: np.ndarray,
    n_slots: int,
    *,
    backend: Backend,
    sample: int | None = None,
    exact: bool = False,
    seed: int = 0,
    rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict]:
    """(C x C table, info) where info says exact or sampled, the rows used and the interval.

    `img_slot` / `txt_slot` give each image's / caption's table row (-1: left out).
    `progress(units)` counts image rows of the store in both modes (a sampled block
    advances by its share of them), so a progress bar over n images ends at n."""
    n_img, n_txt = int((img_slot >= 0).sum()), int((txt_slot >= 0).sum())
    chosen = choose_sample(n_img, n_txt, backend, sample, exact)
    if chosen is None:
        sums = backend.distance_sums(
            X, Y, img_slot, txt_slot, (n_slots, n_slots), rows=rows, progress=progress
        )
        counts = np.outer(
            np.bincount(img_slot[img_slot >= 0], minlength=n_slots),
            np.bincount(txt_slot[txt_slot >= 0], minlength=n_slots),
        )
        info = {**exact_info(n_img * n_txt), "n_images": n_img, "n_texts": n_txt}
        return sums / counts, info
    table, info = _sampled(
        X, Y, img_slot, txt_slot, n_slots, backend, chosen, seed, rows, _scaled(progress, n_img)
    )
    info["default"] = sample is None
    return table, info


def _scaled(
    progress: Callable[[int], None] | None, units: int
) -> Callable[[int, int, int], None] | None:
    """progress(lo, hi, n) for block [lo, hi) of n sampled rows, in `units` (image rows)."""
    if progress is None:
        return None
    return lambda lo, hi, n: progress(units * hi // n - units * lo // n)


def _runs(groups: np.ndarray, n_groups: int) -> list[tuple[int, int]]:
    """(start, stop) of every group's run in rows sorted by group."""
    edges = np.searchsorted(groups, np.arange(n_groups + 1))
    return [(int(edges[g]), int(edges[g + 1])) for g in range(n_groups)]


def _sampled(X, Y, img_slot, txt_slot, C, backend, sample, seed, rows, progress=None):
    """The table of a stratified sample, with a bootstrap of its linear (Hájek) projection:
    cell (a, b) = mean over sampled i in a of R[i, b] + mean over sampled j in b of
    Q[a, j] − the cell, where R and Q are the row and column means of the sampled
    distances. Resampling images and captions within their categories then costs
    O(resamples · rows · C) instead of a pass over the pairs per resample."""
    rng = np.random.default_rng(seed)
    per = max(2, -(-sample // max(C, 1)))
    ri, rj = stratified_sample(img_slot, per, rng), stratified_sample(txt_slot, per, rng)
    gi, gj = img_slot[ri], txt_slot[rj]
    n_a, n_b = np.bincount(gi, minlength=C), np.bincount(gj, minlength=C)
    Xs = np.ascontiguousarray(X[ri], dtype=np.float32)
    Ys = np.ascontiguousarray(Y[rj], dtype=np.float32)
    y_hot = backend.put(one_hot(gj, C, np.float32))
    row_sums = np.zeros((ri.size, C))  # Σ over sampled captions of b of d(i, j)
    col_sums = np.zeros((C, rj.size))  # Σ over sampled images of a of d(i, j)
    for lo, hi, c0, c1, D in backend.unit_distance_tiles(Xs, Ys, rows):
        row_sums[lo:hi] += backend.host(D @ y_hot[c0:c1])
        col_sums[:, c0:c1] += backend.host(backend.put(one_hot(gi[lo:hi], C, np.float32)).T @ D)
        if progress is not None and c1 == Ys.shape[0]:
            progress(lo, hi, ri.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = one_hot(gi, C).T @ row_sums / np.outer(n_a, n_b)
        R = row_sums / n_b[None, :]  # (images, C): mean distance to captions of b
        Q = col_sums / n_a[:, None]  # (C, captions): mean distance to images of a
        W = stratified_weights(gi, rng, TABLE_BOOTSTRAP)
        V = stratified_weights(gj, rng, TABLE_BOOTSTRAP)
        # (resamples, a, b): weighted means of R within a and of Q within b
        replicates = np.empty((TABLE_BOOTSTRAP, C, C))
        for a, (s0, s1) in enumerate(_runs(gi, C)):
            replicates[:, a, :] = W[:, s0:s1] @ R[s0:s1] / n_a[a]
        for b, (s0, s1) in enumerate(_runs(gj, C)):
            replicates[:, :, b] += V[:, s0:s1] @ Q[:, s0:s1].T / n_b[b]
        low, high = percentile_interval(replicates - table[None])
    info = {
        **sampled_info(
            ri.size * rj.size,
            seed,
            "images and captions resampled within their categories; linearised statistic",
            TABLE_BOOTSTRAP,
        ),
        "n_images": int(ri.size),
        "n_texts": int(rj.size),
        "per_category": per,
        "low": low,
        "high": high,
        "max_half_width": float(np.nanmax((high - low) / 2.0)) if low.size else None,
    }
    return table, info
