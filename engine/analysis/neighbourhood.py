"""Neighbourhood test of "Two Effects, One Trigger": do both modalities order categories alike?

For each category a, the other categories are ranked by the cosine similarity of their
image centroid to a's image centroid, and again by text centroids (class prompt
embeddings when the store has them, else caption centroids). The normalised Kendall-τ
distance between the two orderings is the share of discordant pairs: 0 = the same
neighbourhoods, 0.5 = unrelated, 1 = reversed. Exact ties in either ordering count as
neither concordant nor discordant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.engine.analysis.gap import normalize
from mgap.errors import StoreError
from mgap.store import Store
from mgap.store.schema import PROMPT_SET_CATEGORY


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


def neighbourhood_distances(image_centroids: np.ndarray, text_centroids: np.ndarray) -> np.ndarray:
    """Per category, the Kendall-τ distance between its image and text neighbour orderings."""
    K = image_centroids.shape[0]
    sim_image = normalize(image_centroids) @ normalize(image_centroids).T
    sim_text = normalize(text_centroids) @ normalize(text_centroids).T
    out = np.empty(K)
    for a in range(K):
        others = np.arange(K) != a
        out[a] = kendall_tau_distance(sim_image[a, others], sim_text[a, others])
    return out


def neighbourhood_test(
    image_centroids: np.ndarray, text_centroids: np.ndarray, names: Sequence[str]
) -> dict:
    """{"mean_distance", "n_categories", "per_category": [{"name", "distance"}]}."""
    if image_centroids.shape[0] < 3:
        raise ValueError("the neighbourhood test needs at least 3 categories")
    per = neighbourhood_distances(image_centroids, text_centroids)
    return {
        "mean_distance": float(np.mean(per)),
        "chance": 0.5,
        "n_categories": int(per.size),
        "per_category": [
            {"name": str(n), "distance": float(d)} for n, d in zip(names, per, strict=True)
        ],
    }


def _centroids(rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of normalised rows per group id (ids < 0 are ignored)."""
    keep = groups >= 0
    sums = np.zeros((n_groups, rows.shape[1]))
    np.add.at(sums, groups[keep], normalize(rows[keep]))
    counts = np.bincount(groups[keep], minlength=n_groups)
    return sums / np.maximum(counts, 1)[:, None]


def neighbourhood_report(store: Store) -> dict:
    """The `mgap neighbours --json` document over the store's primary categories."""
    from mgap.engine.analysis.pairs import store_header

    if not store.has_images:
        raise StoreError(
            f"the neighbourhood test needs image embeddings; {store.path.name} has none"
        )
    if not store.category_names:
        raise StoreError(f"{store.path.name} has no category labels to compare neighbourhoods of")
    primary = store.primary_category
    C = len(store.category_names)
    has_image = np.bincount(primary[primary >= 0], minlength=C) > 0
    image_centroids = _centroids(store.image_embeddings(), primary, C)
    prompts = store.prompt_embeddings(PROMPT_SET_CATEGORY)
    if prompts is not None:
        names, embeddings = prompts
        position = {name: i for i, name in enumerate(names)}
        has_text = np.asarray([n in position for n in store.category_names])
        text_centroids = np.zeros((C, embeddings.shape[1]))
        rows = [c for c in range(C) if has_text[c]]
        text_centroids[rows] = embeddings[[position[store.category_names[c]] for c in rows]]
        source = "class prompts"
    elif store.has_texts:
        caption_cat = primary[store.text_image_index]
        has_text = np.bincount(caption_cat[caption_cat >= 0], minlength=C) > 0
        text_centroids = _centroids(store.text_embeddings(), caption_cat, C)
        source = "caption centroids"
    else:
        raise StoreError(
            f"{store.path.name} has neither text embeddings nor class prompt embeddings",
            hint="extract with a two-tower model",
        )
    if image_centroids.shape[1] != text_centroids.shape[1]:
        raise StoreError(f"{store.path.name}: image and text embeddings have different dims")
    present = np.flatnonzero(has_image & has_text)
    if present.size < 3:
        raise StoreError(
            f"{store.path.name} has {present.size} categories with both images and texts; "
            "the neighbourhood test needs at least 3"
        )
    result = neighbourhood_test(
        image_centroids[present],
        text_centroids[present],
        [store.category_names[c] for c in present],
    )
    return {**store_header(store), "text_side": source, **result}
