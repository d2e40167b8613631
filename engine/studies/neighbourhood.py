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

from mgap.core.errors import StoreError, UsageError
from mgap.engine.studies.gap import normalize
from mgap.store import Store
from mgap.store.schema import PROMPT_SET_CATEGORY

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
        M = normalize(M)
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


def _class_means(rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of normalised rows per group id (ids < 0 are ignored), normalised and summed in
    float64 block by block (no copy of the side)."""
    from mgap.engine.studies.gap import BLOCK, group_sum

    sums = np.zeros((n_groups, rows.shape[1]))
    for lo in range(0, rows.shape[0], BLOCK):
        sums += group_sum(normalize(rows[lo : lo + BLOCK]), groups[lo : lo + BLOCK], n_groups)
    counts = np.bincount(groups[groups >= 0], minlength=n_groups)
    return sums / np.maximum(counts, 1)[:, None]


def neighbourhood_report(
    store: Store, *, similarity: str = "mean_pairwise", exclude_self: bool = False
) -> dict:
    """The `mgap neighbours --json` document over the store's primary categories."""
    from mgap.engine.studies.pairs import store_header

    if not store.has_images:
        raise StoreError(
            f"the neighbourhood test needs image embeddings; {store.path.name} has none"
        )
    if not store.category_names:
        raise StoreError(f"{store.path.name} has no category labels to compare neighbourhoods of")
    if similarity not in SIMILARITIES:
        raise UsageError(
            f"unknown similarity {similarity!r}", hint=f"use {' or '.join(SIMILARITIES)}"
        )
    primary = store.primary_category
    C = len(store.category_names)
    has_image = np.bincount(primary[primary >= 0], minlength=C) > 0
    image_means = _class_means(store.image_embeddings(np.float32), primary, C)
    prompts = store.prompt_embeddings(PROMPT_SET_CATEGORY)
    if prompts is not None:
        names, embeddings = prompts
        position = {name: i for i, name in enumerate(names)}
        has_text = np.asarray([n in position for n in store.category_names])
        text_means = np.zeros((C, embeddings.shape[1]))
        rows = [c for c in range(C) if has_text[c]]
        text_means[rows] = embeddings[[position[store.category_names[c]] for c in rows]]
        source = "class prompts"
    elif store.has_texts:
        caption_cat = primary[store.text_image_index]
        has_text = np.bincount(caption_cat[caption_cat >= 0], minlength=C) > 0
        text_means = _class_means(store.text_embeddings(np.float32), caption_cat, C)
        source = "caption centroids"
    else:
        raise StoreError(
            f"{store.path.name} has neither text embeddings nor class prompt embeddings",
            hint="extract with a two-tower model",
        )
    if image_means.shape[1] != text_means.shape[1]:
        raise StoreError(f"{store.path.name}: image and text embeddings have different dims")
    present = np.flatnonzero(has_image & has_text)
    if present.size < 3:
        raise StoreError(
            f"{store.path.name} has {present.size} categories with both images and texts; "
            "the neighbourhood test needs at least 3"
        )
    result = neighbourhood_test(
        image_means[present],
        text_means[present],
        [store.category_names[c] for c in present],
        similarity=similarity,
        exclude_self=exclude_self,
    )
    return {**store_header(store), "text_side": source, **result}
