"""Consistency checks for `mgap verify`: every problem is reported, not just the first."""

from __future__ import annotations

import os

import h5py
import numpy as np

from mgap.store import schema as S
from mgap.store.reader import Store


def verify_store(path: str | os.PathLike) -> list[str]:
    """Reasons the store at `path` is not a consistent, complete store; [] when it is."""
    store = Store(path)  # raises StoreError for missing / non-HDF5 / non-mgap files
    problems: list[str] = []
    n, m = store.n_images_total, store.n_texts_total
    if store.status != S.STATUS_COMPLETE:
        problems.append(f"status is {store.status!r}, not complete")
    if not store.has_images and not store.has_texts:
        problems.append("the store has neither image nor text embeddings")
    if len(set(store._ids_all)) != n:
        problems.append("image ids are not unique")
    rows = store._caption_rows_all
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        problems.append("a caption points at an image row that does not exist")
    with h5py.File(store.path, "r", locking=False) as f:
        for name, expected in (
            (S.IMAGE_PATHS, n),
            (S.IMAGE_VALID, n),
            (S.IMAGE_PRIMARY, n),
            (S.IMAGE_LABELS, n),
            (S.TEXT_IMAGE_ROW, m),
        ):
            if f[name].shape[0] != expected:
                problems.append(f"{name} has {f[name].shape[0]} rows, expected {expected}")
        labels = f[S.IMAGE_LABELS]
        if labels.ndim != 2 or labels.shape[1] != len(store.category_names):
            problems.append(
                f"{S.IMAGE_LABELS} has shape {labels.shape}, expected (N, {len(store.category_names)})"
            )
        primary = store._primary_all
        if primary.size and (primary.min() < -1 or primary.max() >= len(store.category_names)):
            problems.append("a primary category index is out of range")
        if len(store.supercategory_of) != len(store.category_names):
            problems.append("categories and supercategories differ in length")
        sides = [S.perturbed_embeddings(p) for p in store.perturbations]
        for name, expected in ((S.IMAGE_EMB, n), (S.TEXT_EMB, m), *((p, n) for p in sides)):
            if name in f and f[name].shape[0] != expected:
                problems.append(f"{name} has {f[name].shape[0]} rows, expected {expected}")
    if store.has_images and store.images_done != n:
        problems.append(f"{store.images_done} of {n} image rows written")
    if store.has_texts and store.texts_done != m:
        problems.append(f"{store.texts_done} of {m} text rows written")
    skipped_rows = n - int(store._valid_all.sum())
    if store.has_images and store.images_done == n and skipped_rows != len(store.skipped):
        problems.append(
            f"{skipped_rows} image rows are not embedded but {len(store.skipped)} skips are recorded"
        )
    perturbed = [
        (f"{setting} image", True, lambda dt, s=setting: store.perturbed_image_embeddings(s, dt))
        for setting in store.perturbations
    ]
    for side, has, read in (
        ("image", store.has_images, store.image_embeddings),
        ("text", store.has_texts, store.text_embeddings),
        *perturbed,
    ):
        if not has:
            continue
        emb = read(np.float32)
        bad = ~np.isfinite(emb).all(axis=1)
        if bad.any():
            problems.append(f"{int(bad.sum())} {side} embeddings contain NaN or inf")
        zero = ~np.any(emb != 0, axis=1)
        if zero.any():
            problems.append(f"{int(zero.sum())} {side} embeddings are all zeros")
    return problems
