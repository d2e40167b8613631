"""Zero-shot classification of a store's images against its class prompt embeddings (the
measure itself is `mgap.engine.measures.zeroshot`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.measures.zeroshot import as_multi_hot, zero_shot
from mgap.engine.reports.analysis import ClassAccuracy, ZeroShotReport
from mgap.engine.reports.groups import GroupsReport
from mgap.engine.studies.pairs import store_header
from mgap.engine.studies.scores import store_score
from mgap.store import Store
from mgap.store.schema import PROMPT_SET_CATEGORY


def _ground_truth(store: Store, label_set: str, names: list[str]) -> np.ndarray:
    """Per-image truth over the prompt classes: multi-hot for categories, an index for attributes."""
    if label_set == PROMPT_SET_CATEGORY:
        column = {name: c for c, name in enumerate(store.category_names)}
        missing = [n for n in names if n not in column]
        if missing:
            raise StoreError(
                f"{store.path.name}: prompt classes {missing[:3]} are not categories of the store"
            )
        return store.labels[:, [column[n] for n in names]]
    attributes = store.attributes
    if label_set not in attributes:
        raise StoreError(
            f"{store.path.name} has prompts for {label_set!r} but no image attribute of that name"
        )
    position = {name: c for c, name in enumerate(names)}
    return np.asarray([position.get(v, -1) for v in attributes[label_set]], dtype=np.int64)


def zero_shot_inputs(
    store: Store, label_set: str = PROMPT_SET_CATEGORY
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(class names, class prompt embeddings, (n_images, n_classes) multi-hot truth)."""
    prompts = store.prompt_embeddings(label_set)
    if prompts is None:
        available = ", ".join(store.prompt_sets) or "none"
        raise StoreError(
            f"{store.path.name} has no prompt embeddings for {label_set!r} (available: {available})",
            hint="extract with a two-tower model on a dataset with class names",
        )
    if not store.has_images:
        raise StoreError(f"zero-shot needs image embeddings; {store.path.name} is text-only")
    names, class_embeddings = prompts
    truth = _ground_truth(store, label_set, list(names))
    return list(names), class_embeddings, as_multi_hot(truth, len(names))


def zero_shot_report(
    store: Store,
    label_set: str = PROMPT_SET_CATEGORY,
    score: str | None = None,
    groups: Callable[[], GroupsReport] | None = None,
) -> ZeroShotReport:
    """The `mgap zeroshot` report, from the class prompt embeddings in the store; `score`
    defaults to cosine, or negative geodesic distance on Lorentz stores; `groups()` gives
    the `--groups` entry."""
    chosen = store_score(store, score)
    names, class_embeddings, truth = zero_shot_inputs(store, label_set)
    images = store.image_embeddings(np.float32)  # scored in float64 one block at a time
    result = zero_shot(images, class_embeddings, truth, names, score=chosen)
    per_class = [ClassAccuracy.build(**row) for row in result.pop("per_class")]
    optional = {} if groups is None else {"groups": groups()}
    return ZeroShotReport.build(
        **store_header(store),
        **chosen.describe(),
        label_set=label_set,
        **result,
        per_class=per_class,
        **optional,
    )
