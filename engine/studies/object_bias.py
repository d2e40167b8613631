"""Object bias of a store (the MOAD measure, `mgap.engine.measures.object_bias`), with the
zero-shot accuracy of objects and of each attribute."""

from __future__ import annotations

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.measures.object_bias import object_bias
from mgap.engine.studies.zeroshot import zero_shot_report
from mgap.store import Store


def _zero_shot(store: Store, label_set: str) -> float | None:
    if store.prompt_embeddings(label_set) is None or not store.has_images:
        return None
    return zero_shot_report(store, label_set)["accuracy"]


def object_bias_report(store: Store) -> dict[str, object]:
    """The `mgap object-bias --json` document: bias per modality and zero-shot accuracies."""
    objects = np.asarray(store.primary_category)
    attributes = {k: np.asarray(v).astype(str) for k, v in store.attributes.items()}
    if not len(store.category_names) or not (objects >= 0).any():
        raise StoreError(
            f"{store.path.name} has no object (category) labels",
            hint="object bias needs a dataset with categories, e.g. --dataset synthetic or coco",
        )
    if not attributes:
        raise StoreError(
            f"{store.path.name} has no per-image attributes",
            hint="object bias needs attribute labels, e.g. --dataset synthetic",
        )
    doc: dict[str, object] = {
        "store": str(store.path),
        "model": store.model,
        "dataset": store.dataset,
        "split": store.split,
        "attribute_keys": sorted(attributes),
    }
    if store.has_images:
        doc["image"] = object_bias(store.image_embeddings(), objects, attributes)
    if store.has_texts:
        rows = np.asarray(store.text_image_index)
        doc["text"] = object_bias(
            store.text_embeddings(), objects[rows], {k: v[rows] for k, v in attributes.items()}
        )
    doc["zero_shot"] = {
        "object": _zero_shot(store, "category"),
        **{key: _zero_shot(store, key) for key in sorted(attributes)},
    }
    return doc
