"""Neighbourhood test of "Two Effects, One Trigger": do both modalities order categories alike?

For each category a, every category is ranked by its similarity to a, once in the image
space and once in the text space (class prompt embeddings when the store has them, else
captions). The normalised Kendall-τ distance between the two rankings is the share of
discordant pairs: 0 = the same neighbourhoods, 0.5 = unrelated, 1 = reversed. Exact ties in
either ranking count as neither concordant nor discordant.

Default definition, as in the paper's `gap_neighborhood_test.py`: the similarity of two
categories is the mean pairwise cosine between their members (the dot product of the
un-normalised means of the unit rows; a category's similarity to itself includes the i = j
pairs), and each category stays in its own row. `similarity="centroid"` ranks by the cosine
of the normalised centroids and `exclude_self=True` drops a from its own row (mgap's earlier
variant). The peer's own Kendall function reads rank vectors as orderings, so its value
changes when classes are renumbered; the distance here does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.measures.gap import BLOCK, group_sum
from mgap.engine.measures.rows import unit_rows

SIMILARITIES = ("mean_pairwise", "centroid")


def kendall_tau_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the pairs (i, j) that a and b order in opposite directions."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = a.size
    if n < 2:
        return float("nan")
    upper = np.triu_indices(n, k=1)
    sign_a = np.sign(a[:, None] - a[None, :])[upper]
    sign_b = np.sign(b[:, None] - b[None, :])[upper]
    return float(np.count_nonzero(sign_a * sign_b < 0) / sign_a.size)


def category_similarity(means: np.ndarray, similarity: str = "mean_pairwise") -> np.ndarray:
    """(K, K) similarity of categories from the means of their unit rows.

    mean_pairwise: mᵢ·mⱼ, the mean cosine over all member pairs. centroid: the cosine of mᵢ, mⱼ.
    """
    if similarity not in SIMILARITIES:
        raise UsageError(
            f"unknown similarity {similarity!r}", hint=f"use {' or '.join(SIMILARITIES)}"
        )
    M = np.asarray(means, dtype=np.float64)
    if similarity == "centroid":
        M = unit_rows(M)
    return M @ M.T


def neighbourhood_distances(
    image_means: np.ndarray,
    text_means: np.ndarray,
    *,
    similarity: str = "mean_pairwise",
    exclude_self: bool = False,
) -> np.ndarray:
    """Per category, the Kendall-τ distance between its image and text neighbour rankings."""
    K = image_means.shape[0]
    sim_image = category_similarity(image_means, similarity)
    sim_text = category_similarity(text_means, similarity)
    out = np.empty(K)
    for a in range(K):
        keep = np.arange(K) != a if exclude_self else np.ones(K, dtype=bool)
        out[a] = kendall_tau_distance(sim_image[a, keep], sim_text[a, keep])
    return out


def neighbourhood_test(
    image_means: np.ndarray,
    text_means: np.ndarray,
    names: Sequence[str],
    *,
    similarity: str = "mean_pairwise",
    exclude_self: bool = False,
) -> dict:
    """{"similarity", "exclude_self", "mean_distance", "chance", "n_categories",
    "per_category": [{"name", "distance"}]} from per-category means of unit rows."""
    if image_means.shape[0] < 3:
        raise ValueError("the neighbourhood test needs at least 3 categories")
    per = neighbourhood_distances(
        image_means, text_means, similarity=similarity, exclude_self=exclude_self
    )
    return {
        "similarity": similarity,
        "exclude_self": bool(exclude_self),
        "mean_distance": float(np.mean(per)),
        "chance": 0.5,
        "n_categories": int(per.size),
        "per_category": [
            {"name": str(n), "distance": float(d)} for n, d in zip(names, per, strict=True)
        ],
    }


def class_means(rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of normalised rows per group id (ids < 0 are ignored), normalised and summed in
    float64 block by block (no copy of the side)."""
    sums = np.zeros((n_groups, rows.shape[1]))
    for lo in range(0, rows.shape[0], BLOCK):
        sums += group_sum(unit_rows(rows[lo : lo + BLOCK]), groups[lo : lo + BLOCK], n_groups)
    counts = np.bincount(groups[groups >= 0], minlength=n_groups)
    return sums / np.maximum(counts, 1)[:, None]
