"""Image<->text retrieval with CLIP_benchmark hit-rate semantics, by counting, never sorting.

The rank of a query is 1 + the number of wrong candidates that score at least as high as
its (best) right one. So t2i R@k is the share of captions whose image is in the top k,
and i2t R@k the share of images with any of their captions in the top k. Ties count
against the query (a collapsed model with all-equal scores gets rank N, not 1); the
positive's own score is excluded exactly, never compared with itself.

Scores come from blocked float32 matrix products (one block of images against every
caption at a time): one pass gives both directions, memory stays at block × captions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.engine.analysis.gap import check_pairs, normalize
from mgap.errors import StoreError
from mgap.store import Store

#: image rows per block: 1024 × 25,000 float32 scores = 100 MB
DEFAULT_BLOCK = 1024


def _caption_slices(index: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Captions ordered by image, and where each image's captions start in that order."""
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(n_images + 1))
    return order, starts


def retrieval_ranks(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    *,
    block: int = DEFAULT_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """(i2t rank per image, t2i rank per caption), 1 = first; images with no caption get 0."""
    index = check_pairs(X, Y, text_image_index)
    n, m = X.shape[0], Y.shape[0]
    Xn, Yn = normalize(X, np.float32), normalize(Y, np.float32)
    positive = np.einsum("ij,ij->i", Xn[index], Yn)
    order, starts = _caption_slices(index, n)
    t2i_count = np.zeros(m, dtype=np.int64)
    i2t_rank = np.zeros(n, dtype=np.int64)
    YnT = np.ascontiguousarray(Yn.T)
    for lo in range(0, n, max(int(block), 1)):
        hi = min(lo + block, n)
        scores = Xn[lo:hi] @ YnT
        mine = order[starts[lo] : starts[hi]]  # captions whose image is in this block
        local = index[mine] - lo
        own = scores[local, mine]
        # text -> image: images of this block at least as close as the caption's own image
        t2i_count += np.count_nonzero(scores >= positive, axis=0)
        t2i_count[mine] -= own >= positive[mine]
        # image -> text: captions at least as close as the image's best caption
        best = np.full(hi - lo, np.inf, dtype=np.float32)
        has = np.zeros(hi - lo, dtype=bool)
        has[local] = True
        best[has] = -np.inf
        np.maximum.at(best, local, own)
        beaten = np.count_nonzero(scores >= best[:, None], axis=1)
        own_at_best = np.bincount(local, weights=own >= best[local], minlength=hi - lo)
        i2t_rank[lo:hi] = np.where(has, beaten - own_at_best.astype(np.int64) + 1, 0)
    return i2t_rank, t2i_count + 1


def summarise_ranks(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """{"R@k" fractions..., "median_rank", "mean_rank", "n"} over the ranks that exist (> 0)."""
    ranks = ranks[ranks > 0]
    out: dict = {}
    for k in ks:
        out[f"R@{int(k)}"] = float(np.mean(ranks <= k)) if ranks.size else None
    out["median_rank"] = float(np.median(ranks)) if ranks.size else None
    out["mean_rank"] = float(ranks.mean()) if ranks.size else None
    out["n"] = int(ranks.size)
    return out


def retrieval_metrics(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 10),
    block: int = DEFAULT_BLOCK,
) -> dict:
    """{"i2t": {...}, "t2i": {...}} with R@k as fractions, median and mean rank."""
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"recall cut-offs must be >= 1, got {list(ks)}")
    i2t, t2i = retrieval_ranks(X, Y, text_image_index, block=block)
    return {"i2t": summarise_ranks(i2t, ks), "t2i": summarise_ranks(t2i, ks)}


def retrieval_report(store: Store, *, by_category: bool = False, captions: str = "all") -> dict:
    """The `mgap retrieval --json` document; `by_category` adds recall per primary category and
    supercategory (queries of that group, ranked against the whole gallery)."""
    from mgap.engine.analysis.categories import category_groups
    from mgap.engine.analysis.pairs import store_header, store_pairs

    X, Y, index = store_pairs(store, captions=captions, what="retrieval")
    i2t, t2i = retrieval_ranks(X, Y, index)
    doc = {
        **store_header(store),
        "captions": captions,
        "n_images": int(X.shape[0]),
        "n_texts": int(Y.shape[0]),
        "ties": "count against the query",
        "i2t": summarise_ranks(i2t),
        "t2i": summarise_ranks(t2i),
    }
    if by_category:
        if not store.category_names:
            raise StoreError(
                f"{store.path.name} has no category labels, so --by-category has nothing to split",
                hint="extract from a dataset with categories (COCO instances, image folders)",
            )
        groups = category_groups(
            store.primary_category, store.category_names, store.supercategory_of
        )
        doc["by_category"] = [
            {
                "name": name,
                "kind": kind,
                "n_images": int(mask.sum()),
                "n_texts": int(mask[index].sum()),
                "i2t": summarise_ranks(i2t[mask]),
                "t2i": summarise_ranks(t2i[mask[index]]),
            }
            for name, kind, mask in groups
        ]
    return doc
