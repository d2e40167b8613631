"""Read the (images, captions, caption -> image) triple that every paired analysis needs.

One place for the user-facing checks: both sides present, one shared dimension, rows
written, and the `--captions all|first` choice ("Mind the Gap" keeps the first caption).
"""

from __future__ import annotations

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.gap import first_caption_rows
from mgap.store import Store

CAPTION_MODES = ("all", "first")


def store_header(store: Store) -> dict:
    """Where a report's numbers come from (prepended to every store-level document)."""
    return {
        "store": str(store.path),
        "model": store.model,
        "dataset": store.dataset,
        "split": store.split,
        "status": store.status,
    }


def store_pairs(
    store: Store,
    *,
    captions: str = "all",
    what: str = "gap",
    dtype: type = np.float64,
    rows_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X images, Y captions, caption -> image index) in `dtype`, or a one-line StoreError.

    The scale-aware analyses (gap, retrieval) ask for float32: the embeddings as stored,
    with no float64 copy of a side. `rows_only=True` returns (n, 0)/(m, 0) placeholders
    instead of reading embeddings (a cached result needs only the shapes and the index)."""
    if captions not in CAPTION_MODES:
        raise UsageError(f"--captions must be one of {', '.join(CAPTION_MODES)}, got {captions!r}")
    if not (store.has_images and store.has_texts):
        kind = "text-only" if store.has_texts else "image-only"
        raise StoreError(
            f"{what} needs both image and text embeddings; {store.path.name} is a {kind} store",
            hint="extract with a two-tower model (CLIP, SigLIP, BLIP)",
        )
    if store.n_images == 0 or store.n_texts == 0:
        raise StoreError(
            f"{store.path.name} has no embedded image/caption pairs yet (status {store.status})",
            hint="wait for the extraction or resume it with `mgap extract`",
        )
    if rows_only:
        X, Y = np.zeros((store.n_images, 0), dtype), np.zeros((store.n_texts, 0), dtype)
    else:
        X, Y = store.image_embeddings(dtype), store.text_embeddings(dtype)
    index = store.text_image_index
    if captions == "first":
        rows = first_caption_rows(index)
        Y, index = Y[rows], index[rows]
    return X, Y, index
