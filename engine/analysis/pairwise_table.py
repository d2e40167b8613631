"""The peers' category x category table: mean ‖x̂ᵢ − ŷⱼ‖ over images i of row category a and
captions j of column category b. Quadratic in the store, so it is exact when affordable and
a stated, seeded estimate when not.

- exact: one blocked pass of float32 products on the backend, sums in float64;
- sampled: up to ⌈N / C⌉ rows of every category on each side (seeded), the table of the
  sampled pairs, and a stratified two-sample bootstrap (images and captions resampled
  within their categories, TABLE_BOOTSTRAP times) giving a 95 % interval per cell.

On the CPU the table is sampled by default once the store has more than EXACT_CELLS
(image, caption) pairs; `exact=True` (`--exact`) forces the full table, and a GPU
backend always computes it exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mgap.engine.analysis.backend import Backend, one_hot
from mgap.engine.analysis.sampling import (
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
TABLE_BOOTSTRAP = 200


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
    return 2.0 * min(sample, n_images) * min(sample, n_texts) * (dim + TABLE_BOOTSTRAP)


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

    `img_slot` / `txt_slot` give each image's / caption's table row (-1: left out)."""
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
    table, info = _sampled(X, Y, img_slot, txt_slot, n_slots, backend, chosen, seed, rows)
    info["default"] = sample is None
    return table, info


def _segments(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Start of every group's run in rows sorted by group (n_groups + 1 boundaries)."""
    return np.searchsorted(groups, np.arange(n_groups + 1))


def _sampled(X, Y, img_slot, txt_slot, C, backend, sample, seed, rows):
    rng = np.random.default_rng(seed)
    per = max(2, -(-sample // max(C, 1)))
    ri, rj = stratified_sample(img_slot, per, rng), stratified_sample(txt_slot, per, rng)
    gi, gj = img_slot[ri], txt_slot[rj]
    W = stratified_weights(gi, rng, TABLE_BOOTSTRAP)
    V = stratified_weights(gj, rng, TABLE_BOOTSTRAP)
    seg = _segments(gj, C)
    Vt, y_hot = backend.put(V.T), backend.put(one_hot(gj, C, np.float32))
    sums = np.zeros((C, C))
    boot = np.zeros((TABLE_BOOTSTRAP, C, C))
    Xs = np.ascontiguousarray(X[ri], dtype=np.float32)
    Ys = np.ascontiguousarray(Y[rj], dtype=np.float32)
    for lo, hi, D in backend.unit_distance_blocks(Xs, Ys, rows):
        x_hot = one_hot(gi[lo:hi], C)
        sums += x_hot.T @ backend.host(D @ y_hot)
        Wb = W[:, lo:hi].astype(np.float64)
        for b in range(C):
            s0, s1 = int(seg[b]), int(seg[b + 1])
            if s1 > s0:
                M = backend.host(D[:, s0:s1] @ Vt[s0:s1])  # (rows, resamples)
                boot[:, :, b] += (Wb * M.T) @ x_hot
    counts = np.outer(np.bincount(gi, minlength=C), np.bincount(gj, minlength=C))
    with np.errstate(invalid="ignore", divide="ignore"):
        table = sums / counts
        low, high = percentile_interval(boot / counts)
    info = {
        **sampled_info(
            ri.size * rj.size, seed, "images and captions within their categories", TABLE_BOOTSTRAP
        ),
        "n_images": int(ri.size),
        "n_texts": int(rj.size),
        "per_category": per,
        "low": low,
        "high": high,
        "max_half_width": float(np.nanmax((high - low) / 2.0)) if low.size else None,
    }
    return table, info
