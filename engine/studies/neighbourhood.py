"""The neighbourhood test of "Two Effects, One Trigger" on a store's primary categories (the
test itself is `mgap.engine.measures.neighbourhood`)."""

from __future__ import annotations

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.neighbourhood import SIMILARITIES, class_means, neighbourhood_test
from mgap.engine.reports.analysis import CategoryDistance, NeighbourhoodReport
from mgap.engine.studies.pairs import store_header
from mgap.store import Store
from mgap.store.schema import PROMPT_SET_CATEGORY


def neighbourhood_report(
    store: Store, *, similarity: str = "mean_pairwise", exclude_self: bool = False
) -> NeighbourhoodReport:
    """The `mgap neighbours` report over the store's primary categories."""
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
    image_means = class_means(store.image_embeddings(np.float32), primary, C)
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
        text_means = class_means(store.text_embeddings(np.float32), caption_cat, C)
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
    per_category = [CategoryDistance(**row) for row in result.pop("per_category")]
    return NeighbourhoodReport(
        **store_header(store), text_side=source, **result, per_category=per_category
    )
