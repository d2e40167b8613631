"""Write a complete store from in-memory arrays in one go (imports, tests, derived stores)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mgap.store import schema as S
from mgap.store.writer import StoreLayout, StoreWriter, create_store


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
    n, m = _row_counts(image_embeddings, text_embeddings, image_ids, captions)
    layout = StoreLayout(
        image_ids=[str(i) for i in range(n)] if image_ids is None else list(image_ids),
        image_paths=[""] * n,
        captions=[""] * m if captions is None else list(captions),
        caption_image_row=np.asarray(
            np.arange(m) % max(n, 1) if caption_image_row is None else caption_image_row
        ),
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
    _write_rows(writer, image_embeddings, text_embeddings, perturbed or {}, prompts or {})
    writer.finish(S.STATUS_COMPLETE)
    return path


def _row_counts(
    image_embeddings: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    image_ids: Sequence[str] | None,
    captions: Sequence[str] | None,
) -> tuple[int, int]:
    """(images, captions): from the embeddings where given, else from the ids and texts."""
    if image_embeddings is not None:
        n = image_embeddings.shape[0]
    else:
        n = len(image_ids) if image_ids is not None else text_embeddings.shape[0]
    m = text_embeddings.shape[0] if text_embeddings is not None else len(captions or [])
    return n, m


def _write_rows(
    writer: StoreWriter,
    image_embeddings: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    perturbed: Mapping[str, np.ndarray],
    prompts: Mapping[str, tuple[Sequence[str], np.ndarray]],
) -> None:
    if image_embeddings is not None:
        writer.write_images(
            0,
            np.asarray(image_embeddings),
            np.ones(image_embeddings.shape[0], dtype=np.uint8),
            {k: np.asarray(v) for k, v in perturbed.items()},
        )
    if text_embeddings is not None:
        writer.write_texts(0, np.asarray(text_embeddings))
    for label_set, (names, embeddings) in prompts.items():
        writer.write_prompts(label_set, names, embeddings)
