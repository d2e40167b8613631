"""The gap per category: each primary category and supercategory, and category × category tables.

An image belongs to its primary category (and that category's supercategory); a caption
belongs to its image's. Two category × category tables compare the image side of row
category a with the text side of column category b:
- `centroid`: ‖mean x̂ over images of a − mean ŷ over captions of b‖ (its diagonal is
  each category's L2M);
- `mean_pairwise`: the mean of ‖x̂ᵢ − ŷⱼ‖ over every image i of a and caption j of b, the
  table the peers report, computed in blocks without an n × m matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.engine.analysis.backend import Backend, resolve_backend
from mgap.engine.analysis.gap import gap_metrics, normalize

#: image rows per block of the mean-pairwise table (None: sized by the backend)
PAIRWISE_BLOCK: int | None = None


def category_groups(
    primary: np.ndarray, category_names: Sequence[str], supercategory_of: Sequence[str]
) -> list[tuple[str, str, np.ndarray]]:
    """(name, "category"|"supercategory", image mask) for every group with at least one image."""
    primary = np.asarray(primary, dtype=np.int64)
    groups = []
    for c, name in enumerate(category_names):
        mask = primary == c
        if mask.any():
            groups.append((str(name), "category", mask))
    supers = np.asarray([*supercategory_of, ""], dtype=object)[primary]
    for name in sorted({s for s in supercategory_of if s}):
        mask = supers == name
        if mask.any():
            groups.append((str(name), "supercategory", mask))
    return groups


def _subset(
    X: np.ndarray, Y: np.ndarray, index: np.ndarray, image_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images of a mask, their captions, and the caption index renumbered to the subset."""
    new_position = np.cumsum(image_mask) - 1
    caption_mask = image_mask[index]
    return X[image_mask], Y[caption_mask], new_position[index[caption_mask]]


def category_tables(
    Xn: np.ndarray,
    Yn: np.ndarray,
    index: np.ndarray,
    primary: np.ndarray,
    n_categories: int,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(present category ids, centroid table, mean-pairwise table) over categories with captions."""
    primary = np.asarray(primary, dtype=np.int64)
    caption_cat = primary[index]
    n_img = np.bincount(primary[primary >= 0], minlength=n_categories)
    n_txt = np.bincount(caption_cat[caption_cat >= 0], minlength=n_categories)
    present = np.flatnonzero((n_img > 0) & (n_txt > 0))
    slot = np.full(n_categories + 1, -1, dtype=np.int64)
    slot[present] = np.arange(present.size)
    img_slot, txt_slot = slot[primary], slot[caption_cat]
    keep_img, keep_txt = img_slot >= 0, txt_slot >= 0
    C = present.size
    one_hot_img = np.zeros((int(keep_img.sum()), C))
    one_hot_img[np.arange(one_hot_img.shape[0]), img_slot[keep_img]] = 1.0
    one_hot_txt = np.zeros((int(keep_txt.sum()), C))
    one_hot_txt[np.arange(one_hot_txt.shape[0]), txt_slot[keep_txt]] = 1.0
    Xc, Yc = Xn[keep_img], Yn[keep_txt]
    counts_img, counts_txt = one_hot_img.sum(0), one_hot_txt.sum(0)
    img_centroids = (one_hot_img.T @ Xc) / counts_img[:, None]
    txt_centroids = (one_hot_txt.T @ Yc) / counts_txt[:, None]
    diff = img_centroids[:, None, :] - txt_centroids[None, :, :]
    centroid = np.sqrt(np.einsum("abd,abd->ab", diff, diff))

    sums = (backend or resolve_backend("cpu")).distance_sums(
        Xc.astype(np.float32, copy=False),
        Yc.astype(np.float32, copy=False),
        one_hot_img,
        one_hot_txt.astype(np.float32),
        rows=PAIRWISE_BLOCK,
    )
    pairwise = sums / np.outer(counts_img, counts_txt)
    return present, centroid, pairwise


def category_breakdown(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    primary: np.ndarray,
    category_names: Sequence[str],
    supercategory_of: Sequence[str],
    *,
    top_k: int = 10,
) -> dict:
    """`by_category` rows, the two category × category tables and the ranking by L2M."""
    index = np.asarray(text_image_index, dtype=np.int64)
    rows = []
    for name, kind, mask in category_groups(primary, category_names, supercategory_of):
        Xs, Ys, idx = _subset(X, Y, index, mask)
        if Ys.shape[0] == 0:
            continue
        rows.append({"name": name, "kind": kind, **gap_metrics(Xs, Ys, idx, top_k=top_k)})
    present, centroid, pairwise = category_tables(
        normalize(X), normalize(Y), index, primary, len(category_names)
    )
    names = [str(category_names[c]) for c in present]
    ranking = sorted(
        (r for r in rows if r["kind"] == "category"), key=lambda r: r["l2m"], reverse=True
    )
    return {
        "by_category": rows,
        "category_centroid_distances": {
            "definition": "||mean image(row) - mean text(column)|| of normalised embeddings",
            "names": names,
            "matrix": centroid,
        },
        "category_pairwise_distances": {
            "definition": "peers' table: mean ||x_i - y_j|| over images of row, texts of column",
            "names": names,
            "matrix": pairwise,
        },
        "category_ranking": [
            {"rank": i + 1, "name": r["name"], "l2m": r["l2m"], "rmg": r["rmg"]}
            for i, r in enumerate(ranking)
        ],
    }
