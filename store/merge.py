"""Merge the per-rank partial stores of a distributed extraction into one store.

A streamed copy, not an h5py virtual dataset: the result is one self-contained file that
can be moved, copied and opened without the rank files beside it (readers refuse virtual
datasets that point elsewhere), and the rank files can be deleted once it is verified.
Rows move block by block through `StoreWriter`, so the copy needs one block of memory and
a kill during the merge leaves a partial store that the next run rebuilds.

The rank stores (`<store>.ranks/`) are a second full copy of the embeddings. The merge
removes them once the merged store verifies; a kill just before that, or a one-process
rerun that completed the store instead, leaves them: `leftover_ranks` sizes them for
`mgap ls`/`info`, and the next `mgap extract` of that store removes them
(`drop_leftover_ranks`), once the store is complete and verifies (docs/guarantees.md).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

import h5py

from mgap.core.errors import StoreError
from mgap.store import schema as S
from mgap.store.naming import sidecar
from mgap.store.reader import Store
from mgap.store.verify import verify_store
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


def leftover_ranks(final: str | os.PathLike) -> int | None:
    """Bytes in the rank-store folder beside `final` (links not followed), None if none."""
    folder = sidecar(final, ".ranks")
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
    except OSError:
        return None
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def drop_leftover_ranks(final: str | os.PathLike) -> int | None:
    """Remove the rank stores beside `final` when `final` is complete and verifies;
    the bytes freed, or None when nothing was removed (a link there is never followed)."""
    size = leftover_ranks(final)
    if size is None:
        return None
    try:
        sound = Store(final).status == S.STATUS_COMPLETE and not verify_store(final)
    except StoreError:
        return None
    if not sound:
        return None
    shutil.rmtree(sidecar(final, ".ranks"))
    return size
