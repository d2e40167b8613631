"""REF arguments (`store.h5`, `store.h5:image`, `store.h5:text`) -> per-image matrices.

Alignment metrics compare two representations of the *same* images, so every REF becomes
one vector per image id: the image embedding, or for a text side the mean of that image's
L2-normalised caption embeddings (a text encoder sees several captions per image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.store import open_store

SIDES = ("image", "text")
MIN_ROWS = 3


@dataclass
class Ref:
    """One side of one store, as rows keyed by image id."""

    name: str
    path: Path
    side: str
    ids: np.ndarray
    matrix: np.ndarray


def parse_ref(ref: str) -> tuple[Path, str | None]:
    """Split `a.h5:text` into (path, side); a path that itself exists wins over a suffix."""
    head, sep, tail = ref.rpartition(":")
    if not sep or "/" in tail or Path(ref).exists():
        return Path(ref), None
    if tail not in SIDES:
        raise UsageError(f"REF {ref!r} has an unknown side {tail!r}", hint="use :image or :text")
    if not head:
        raise UsageError(f"REF {ref!r} names no store", hint="write STORE.h5:{image,text}")
    return Path(head), tail


def _caption_means(store, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each image's unit-norm caption vectors; images without captions are dropped.

    `texts` is normalised in place, and captions already stored image by image (the usual
    layout) are summed without a reordered copy."""
    from mgap.engine.measures.rows import unit_rows_

    unit = unit_rows_(texts)
    owner = store.text_image_index
    order = np.argsort(owner, kind="stable")
    keep, starts, counts = np.unique(owner[order], return_index=True, return_counts=True)
    in_order = owner.size and bool(np.all(np.diff(owner) >= 0))
    rows = unit if in_order else unit[order]
    sums = np.add.reduceat(rows, starts, axis=0) if owner.size else unit[:0].copy()
    sums /= counts[:, None].astype(sums.dtype)  # in place: the means keep the side's dtype
    return store.image_ids[keep], sums


def load_ref(ref: str, dtype: type = np.float64) -> Ref:
    """Read one REF in `dtype` (float32 for the scale-aware analyses: CKA, k-NN); a bad
    suffix or a side the store lacks is a usage error."""
    path, side = parse_ref(ref)
    store = open_store(path)
    if side is None:
        side = "image" if store.has_images else "text"
    has = store.has_images if side == "image" else store.has_texts
    if not has:
        present = "text" if store.has_texts else "image" if store.has_images else "no"
        raise UsageError(
            f"{path.name} has no {side} embeddings (it has {present} embeddings)",
            hint=f"drop the :{side} suffix or pick another store",
        )
    if side == "image":
        ids, matrix = store.image_ids, store.image_embeddings(dtype)
    else:
        ids, matrix = _caption_means(store, store.text_embeddings(dtype))
    if not np.isfinite(matrix).all():
        raise StoreError(
            f"{path.name}:{side} holds non-finite embeddings",
            hint="re-extract with --dtype float32",
        )
    return Ref(name=f"{path.name}:{side}", path=path, side=side, ids=ids, matrix=matrix)


def align_refs(
    refs: list[str], dtype: type = np.float64
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Rows of every REF restricted to the image ids they all share, in the first REF's order."""
    loaded = [load_ref(ref, dtype) for ref in refs]
    names = [r.name for r in loaded]
    if len(set(names)) < len(names):  # same file name in two folders: show what was typed
        names = list(refs)
    common = set(loaded[0].ids.tolist())
    for r in loaded[1:]:
        common &= set(r.ids.tolist())
    ids = np.asarray(
        [i for i in dict.fromkeys(loaded[0].ids.tolist()) if i in common], dtype=object
    )
    if ids.size < MIN_ROWS:
        raise StoreError(
            f"{', '.join(names)} share {ids.size} image id(s); alignment needs at least {MIN_ROWS}",
            hint="compare stores extracted from the same dataset and split",
        )
    matrices = []
    for r in loaded:
        row_of = {key: i for i, key in reversed(list(enumerate(r.ids.tolist())))}
        take = np.asarray([row_of[key] for key in ids.tolist()], dtype=np.int64)
        same = take.size == r.matrix.shape[0] and np.array_equal(take, np.arange(take.size))
        matrices.append(r.matrix if same else r.matrix[take])
    return ids, matrices, names
