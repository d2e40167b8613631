"""Merge the per-rank partial stores of a distributed extraction into one store.

A streamed copy, not an h5py virtual dataset: the result is one self-contained file that
can be moved, copied and opened without the rank files beside it (readers refuse virtual
datasets that point elsewhere), and the rank files can be deleted once it is verified.
Rows move block by block through `StoreWriter`, so the copy needs one block of memory and
a kill during the merge leaves a partial store that the next run rebuilds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py

from mgap.core.errors import StoreError
from mgap.store import schema as S
from mgap.store.reader import Store
from mgap.store.writer import StoreWriter


def copy_rank_rows(
    writer: StoreWriter, part: str | os.PathLike, image_start: int, text_start: int
) -> int:
    """Copy every row of the complete rank store `part` to row `image_start`/`text_start`.

    Returns the number of skipped images carried over (their ids and reasons too).
    """
    store = Store(part)
    if store.status != S.STATUS_COMPLETE:
        raise StoreError(f"{part} is {store.status}, not complete", hint="rerun the same command")
    step = max(writer.block_rows, 1)
    with h5py.File(part, "r", locking=False) as f:
        n, m = f[S.IMAGE_IDS].shape[0], f[S.TEXT_CAPTIONS].shape[0]
        for i in range(0, n, step):
            stop = min(i + step, n)
            valid = f[S.IMAGE_VALID][i:stop]
            if writer.has_images:
                perturbed = {k: f[S.perturbed_embeddings(k)][i:stop] for k in writer.perturbations}
                writer.write_images(image_start + i, f[S.IMAGE_EMB][i:stop], valid, perturbed)
        for i in range(0, m, step):
            if writer.has_texts:
                stop = min(i + step, m)
                writer.write_texts(text_start + i, f[S.TEXT_EMB][i:stop])
    for image_id, reason in store.skipped.items():
        writer.add_skipped(image_id, reason)
    return len(store.skipped)


def merge_rank_stores(
    writer: StoreWriter, parts: Sequence[str | os.PathLike], image_starts: Sequence[int]
) -> int:
    """Copy the rank stores, in rank order, into `writer`'s freshly created store.

    `image_starts[r]` is rank r's first image row; its first caption row follows from the
    ranks before it. Returns the total number of skipped images.
    """
    skipped, text_start = 0, 0
    for part, image_start in zip(parts, image_starts, strict=True):
        if not Path(part).exists():
            continue  # a rank whose share was empty writes no store
        skipped += copy_rank_rows(writer, part, image_start, text_start)
        with h5py.File(part, "r", locking=False) as f:
            text_start += int(f[S.TEXT_CAPTIONS].shape[0])
    return skipped
