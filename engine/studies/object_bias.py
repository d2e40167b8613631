"""Object bias of a store (the MOAD measure, `mgap.engine.measures.object_bias`), with the
zero-shot accuracy of objects and of each attribute."""

from __future__ import annotations

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.measures.object_bias import object_bias
from mgap.engine.reports.studies import ModalityBias, ObjectBiasReport, Separation
from mgap.engine.studies.zeroshot import zero_shot_report
from mgap.store import Store


def _zero_shot(store: Store, label_set: str) -> float | None:
    """Zero-shot accuracy for one label set, or None without its prompts or images."""
    if store.prompt_embeddings(label_set) is None or not store.has_images:
        return None
    return zero_shot_report(store, label_set).accuracy


def _modality(X: np.ndarray, objects: np.ndarray, attributes: dict) -> ModalityBias:
    """One modality's `object_bias` measure as its report type."""
    found = object_bias(X, objects, attributes)
    return ModalityBias(
        objects=Separation(**found["object"]),
        attributes={k: Separation(**v) for k, v in found["attributes"].items()},
        mean_attribute_separation=found["mean_attribute_separation"],
        object_bias=found["object_bias"],
    )


def _labels(store: Store) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(object label per image, attribute values per image), or a one-line StoreError."""
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
    return objects, attributes


def object_bias_report(store: Store) -> ObjectBiasReport:
    """The `mgap object-bias` report: bias per modality and zero-shot accuracies."""
    objects, attributes = _labels(store)
    sides = {}
    if store.has_images:
        sides["image"] = _modality(store.image_embeddings(), objects, attributes)
    if store.has_texts:
        rows = np.asarray(store.text_image_index)
        text_attributes = {k: v[rows] for k, v in attributes.items()}
        sides["text"] = _modality(store.text_embeddings(), objects[rows], text_attributes)
    return ObjectBiasReport.build(
        store=str(store.path),
        model=store.model,
        dataset=store.dataset,
        split=store.split,
        attribute_keys=sorted(attributes),
        **sides,
        zero_shot={
            "object": _zero_shot(store, "category"),
            **{key: _zero_shot(store, key) for key in sorted(attributes)},
        },
    )
