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

from collections.abc import Callable, Sequence

import numpy as np

from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.gap import GapSums, gap_sums
from mgap.engine.measures.pairwise_table import pairwise_table
from mgap.engine.measures.sampling import exact_info

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


def _members(category_names: Sequence[str], supercategory_of: Sequence[str], name: str, kind: str):
    if kind == "category":
        return np.asarray([list(category_names).index(name)])
    return np.asarray([c for c, s in enumerate(supercategory_of) if s == name])


def category_breakdown(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    primary: np.ndarray,
    category_names: Sequence[str],
    supercategory_of: Sequence[str],
    *,
    top_k: int = 10,
    backend: Backend | None = None,
    sample: int | None = None,
    exact: bool = False,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """`by_category` rows, the two category × category tables and the ranking by L2M.

    Per-group metrics come from one O((n + m)·d) pass of float64 sums (no subset copies);
    the mean-pairwise table is exact or sampled (see `pairwise_table`)."""
    index = np.asarray(text_image_index, dtype=np.int64)
    primary = np.asarray(primary, dtype=np.int64)
    n_categories = len(category_names)
    sums = gap_sums(X, Y, index, primary, n_categories)
    rows = _group_rows(sums, primary, category_names, supercategory_of, X.shape[1], top_k)
    present = np.flatnonzero((sums.n_x > 0) & (sums.n_y > 0))
    slot = np.full(n_categories + 1, -1, dtype=np.int64)
    slot[present] = np.arange(present.size)
    pairwise, info = pairwise_table(
        X,
        Y,
        slot[primary],
        slot[primary[index]],
        present.size,
        backend=backend or resolve_backend("cpu"),
        sample=sample,
        exact=exact,
        seed=seed,
        rows=PAIRWISE_BLOCK,
        progress=progress,
    )
    names = [str(category_names[c]) for c in present]
    ranking = sorted(
        (r for r in rows if r["kind"] == "category"), key=lambda r: r["l2m"], reverse=True
    )
    return {
        "by_category": rows,
        "category_centroid_distances": _centroid_table(sums, present, names),
        "category_pairwise_distances": {
            "definition": "peers' table: mean ||x_i - y_j|| over images of row, texts of column",
            "names": names,
            "matrix": pairwise,
            **info,
        },
        "category_ranking": [
            {"rank": i + 1, "name": r["name"], "l2m": r["l2m"], "rmg": r["rmg"]}
            for i, r in enumerate(ranking)
        ],
    }


def _group_rows(sums: GapSums, primary, category_names, supercategory_of, dim: int, top_k: int):
    """The §7 metrics of every category and supercategory with at least one pair."""
    rows = []
    for name, kind, _ in category_groups(primary, category_names, supercategory_of):
        group = sums.merged(_members(category_names, supercategory_of, name, kind))
        if group.n_y[0] == 0:
            continue
        rows.append({"name": name, "kind": kind, **group.metrics(0, dim, top_k)})
    return rows


def _centroid_table(sums: GapSums, present: np.ndarray, names: list[str]) -> dict:
    """‖mean x̂ over images of a − mean ŷ over captions of b‖ for the present categories."""
    img_centroids = sums.sum_x[present] / sums.n_x[present, None]
    txt_centroids = sums.sum_y[present] / sums.n_y[present, None]
    diff = img_centroids[:, None, :] - txt_centroids[None, :, :]
    return {
        "definition": "||mean image(row) - mean text(column)|| of normalised embeddings",
        "names": names,
        "matrix": np.sqrt(np.einsum("abd,abd->ab", diff, diff)),
        **exact_info(int(sums.n_x[present].sum() + sums.n_y[present].sum())),
    }
