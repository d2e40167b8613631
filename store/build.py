"""Write a complete store from in-memory arrays in one go (imports, tests, derived stores)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mgap.store import schema as S
from mgap.store.writer import StoreLayout, create_store


def store_from_arrays(
    path: str | os.PathLike,
    *,
    image_embeddings: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    image_ids: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
    caption_image_row: np.ndarray | None = None,
    category_names: Sequence[str] = (),
    supercategories: Sequence[str] = (),
    primary: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    prompts: Mapping[str, tuple[Sequence[str], np.ndarray]] | None = None,
    perturbed: Mapping[str, np.ndarray] | None = None,
    provenance: Mapping[str, object] | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Rows pair up by default: caption i belongs to image i (the "Mind the Gap" layout).

    `perturbed` maps perturbation settings (noise:0.05, ...) to their image sides.
    """
    path = Path(path)
    if overwrite:
        path.unlink(missing_ok=True)
    n = (
        image_embeddings.shape[0]
        if image_embeddings is not None
        else len(image_ids)
        if image_ids is not None
        else text_embeddings.shape[0]
    )
    m = text_embeddings.shape[0] if text_embeddings is not None else len(captions or [])
    if image_ids is None:
        image_ids = [str(i) for i in range(n)]
    if caption_image_row is None:
        caption_image_row = np.arange(m) % max(n, 1)
    if captions is None:
        captions = [""] * m
    layout = StoreLayout(
        image_ids=list(image_ids),
        image_paths=[""] * n,
        captions=list(captions),
        caption_image_row=np.asarray(caption_image_row),
        category_names=list(category_names),
        supercategories=list(supercategories),
        primary=primary,
        labels=labels,
        attributes=dict(attributes or {}),
    )
    writer = create_store(
        path,
        layout,
        dict(provenance or {}),
        image_dim=None if image_embeddings is None else image_embeddings.shape[1],
        text_dim=None if text_embeddings is None else text_embeddings.shape[1],
        dtype=dtype,
        perturbations=list(perturbed or {}),
    )
    if image_embeddings is not None:
        writer.write_images(
            0,
            np.asarray(image_embeddings),
            np.ones(n, dtype=np.uint8),
            {k: np.asarray(v) for k, v in (perturbed or {}).items()},
        )
    if text_embeddings is not None:
        writer.write_texts(0, np.asarray(text_embeddings))
    for label_set, (names, embeddings) in (prompts or {}).items():
        writer.write_prompts(label_set, names, embeddings)
    writer.finish(S.STATUS_COMPLETE)
    return path
