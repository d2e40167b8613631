"""REF arguments (`store.h5`, `store.h5:image`, `store.h5:text@4`) -> per-image matrices.

Alignment metrics compare two representations of the *same* images, so every REF becomes
one vector per image id: the image embedding, or for a text side the mean of that image's
L2-normalised caption embeddings (a text encoder sees several captions per image).

A REF may end in `@LAYER` (an int, negative counting from the last block), `@all` or a
list `@0,4,8`: one layer's pooled states (`store/layers.py`) in `--space raw|lens` stand in
for the embedding; several layers make a stack for the layers x layers matrices
(docs/commands.md "REF").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.rows import unit_rows_
from mgap.store import open_store

SIDES = ("image", "text")
MIN_ROWS = 3
ALL = "all"
LAYER_HINT = "write STORE:SIDE@LAYER (an int, negative from the end), @all or @0,4,8"


@dataclass
class Ref:
    """One side of one store, as rows keyed by image id."""

    name: str
    path: Path
    side: str
    ids: np.ndarray
    matrix: np.ndarray


@dataclass
class LayerStack:
    """Several layers of one side of one store, rows keyed by image id (the same rows for
    every layer)."""

    name: str
    layers: list[int]  # absolute layer indices, in the order asked
    ids: np.ndarray
    mats: list[np.ndarray]


def split_layers(ref: str) -> tuple[str, str | tuple[int, ...] | None]:
    """Split `a.h5:text@3` into ("a.h5:text", (3,)); `@all` gives "all"; no `@` gives None.
    A path that itself exists wins over a suffix."""
    head, sep, tail = ref.rpartition("@")
    if not sep or "/" in tail or Path(ref).exists():
        return ref, None
    if not head:
        raise UsageError(f"REF {ref!r} names no store", hint=LAYER_HINT)
    if tail == ALL:
        return head, ALL
    try:
        layers = tuple(int(part) for part in tail.split(","))
    except ValueError:
        raise UsageError(f"REF {ref!r} has a bad layer {tail!r}", hint=LAYER_HINT) from None
    return head, layers


def is_stack(ref: str) -> bool:
    """Whether `ref` names several layers (`@all` or a list), so a layers x layers study."""
    layers = split_layers(ref)[1]
    return layers == ALL or (layers is not None and len(layers) > 1)


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
    unit = unit_rows_(texts)
    owner = store.text_image_index
    order = np.argsort(owner, kind="stable")
    keep, starts, counts = np.unique(owner[order], return_index=True, return_counts=True)
    in_order = owner.size and bool(np.all(np.diff(owner) >= 0))
    rows = unit if in_order else unit[order]
    sums = np.add.reduceat(rows, starts, axis=0) if owner.size else unit[:0].copy()
    sums /= counts[:, None].astype(sums.dtype)  # in place: the means keep the side's dtype
    return store.image_ids[keep], sums


def _open_side(path: Path, side: str | None):
    """The open store and the side a REF names (its only side when it names none)."""
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
    return store, side


def _side_rows(store, side: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, one row per image) of a side's rows: caption means for text."""
    if side == "image":
        ids, matrix = store.image_ids, rows
    else:
        ids, matrix = _caption_means(store, rows)
    if not np.isfinite(matrix).all():
        raise StoreError(
            f"{store.path.name}:{side} holds non-finite embeddings",
            hint="re-extract with --dtype float32",
        )
    return ids, matrix


def layer_indices(store, side: str, given: str | tuple[int, ...], space: str) -> list[int]:
    """The absolute stored layers a REF asks for; one-line refusals (exit 2) for a store
    without layers, a layer not stored and a space not stored."""
    found = store.layer_sets.get(side)
    name = store.path.name
    if found is None:
        raise UsageError(
            f"{name} has no per-layer {side} states, so @LAYER and @all do not apply",
            hint="extract with --layers all (or a list such as 0,4,8,-1), or drop the @ suffix",
        )
    if space not in found.spaces:
        raise UsageError(
            f"{name} has no {space!r} {side} layers (stored: {', '.join(found.spaces)})",
            hint="pick --space " + " or ".join(found.spaces),
        )
    if given == ALL:
        return list(found.layers)
    out = []
    for layer in given:
        index = layer + found.count if layer < 0 else layer
        if index not in found.layers:
            raise UsageError(
                f"{name} has no {side} layer {layer} (stored: {', '.join(map(str, found.layers))})",
                hint="pick a stored layer, or extract again with --layers",
            )
        out.append(index)
    return out


def load_ref(ref: str, dtype: type = np.float64, space: str = "raw") -> Ref:
    """Read one REF in `dtype` (float32 for the scale-aware analyses: CKA, k-NN); a bad
    suffix or a side the store lacks is a usage error. `@LAYER` reads that layer's pooled
    states in `space` instead of the embedding."""
    base, layers = split_layers(ref)
    path, side = parse_ref(base)
    store, side = _open_side(path, side)
    name = f"{path.name}:{side}"
    if layers is None:
        rows = store.image_embeddings(dtype) if side == "image" else store.text_embeddings(dtype)
    else:
        picked = layer_indices(store, side, layers, space)
        if len(picked) != 1:
            raise UsageError(
                f"REF {ref!r} names {len(picked)} layers; this command takes one",
                hint="write @LAYER, or use mgap cka / mgap knn for a layers x layers matrix",
            )
        rows = store.layer_embeddings(side, picked[0], space, dtype)
        name = f"{name}@{picked[0]}"
    ids, matrix = _side_rows(store, side, rows)
    return Ref(name=name, path=path, side=side, ids=ids, matrix=matrix)


def load_stack(ref: str, dtype: type = np.float32, space: str = "raw") -> LayerStack:
    """Every layer a REF names (`@all`, a list or one layer) as one stack; a REF without
    `@` is refused, since a layers x layers matrix needs layers on both sides."""
    base, layers = split_layers(ref)
    path, side = parse_ref(base)
    store, side = _open_side(path, side)
    if layers is None:
        raise UsageError(
            f"REF {ref!r} names no layer, while the other REF names several",
            hint="add @all (or @LAYER) to both REFs, e.g. clip.h5:image@all clip.h5:text@all",
        )
    picked = layer_indices(store, side, layers, space)
    mats, ids = [], None
    for layer in picked:
        ids, matrix = _side_rows(store, side, store.layer_embeddings(side, layer, space, dtype))
        mats.append(matrix)
    return LayerStack(name=f"{path.name}:{side}", layers=picked, ids=ids, mats=mats)


def shared_rows(ids_per_ref: list[np.ndarray], names: list[str]) -> tuple[np.ndarray, list]:
    """(the image ids every REF has, in the first REF's order; per REF the rows to take, or
    None when they are all its rows in order)."""
    common = set(ids_per_ref[0].tolist())
    for ids in ids_per_ref[1:]:
        common &= set(ids.tolist())
    shared = np.asarray(
        [i for i in dict.fromkeys(ids_per_ref[0].tolist()) if i in common], dtype=object
    )
    if shared.size < MIN_ROWS:
        raise StoreError(
            f"{', '.join(names)} share {shared.size} image id(s); alignment needs at least {MIN_ROWS}",
            hint="compare stores extracted from the same dataset and split",
        )
    takes = []
    for ids in ids_per_ref:
        row_of = {key: i for i, key in reversed(list(enumerate(ids.tolist())))}
        take = np.asarray([row_of[key] for key in shared.tolist()], dtype=np.int64)
        same = take.size == ids.size and np.array_equal(take, np.arange(take.size))
        takes.append(None if same else take)
    return shared, takes


def align_refs(
    refs: list[str], dtype: type = np.float64, space: str = "raw"
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Rows of every REF restricted to the image ids they all share, in the first REF's order."""
    loaded = [load_ref(ref, dtype, space) for ref in refs]
    names = [r.name for r in loaded]
    if len(set(names)) < len(names):  # same file name in two folders: show what was typed
        names = list(refs)
    ids, takes = shared_rows([r.ids for r in loaded], names)
    matrices = [r.matrix if t is None else r.matrix[t] for r, t in zip(loaded, takes, strict=True)]
    return ids, matrices, names


def align_stacks(
    ref_a: str, ref_b: str, dtype: type = np.float32, space: str = "raw"
) -> tuple[LayerStack, LayerStack | None]:
    """Both REFs' layer stacks on the image ids they share (the second is None when both
    REFs name the same layers of the same side, so every layer is read and built once)."""
    a = load_stack(ref_a, dtype, space)
    if _same_stack(ref_a, ref_b):
        return a, None
    b = load_stack(ref_b, dtype, space)
    names = [a.name, b.name] if a.name != b.name else [ref_a, ref_b]
    ids, takes = shared_rows([a.ids, b.ids], names)
    for stack, take in zip((a, b), takes, strict=True):
        stack.ids = ids
        if take is not None:
            stack.mats = [m[take] for m in stack.mats]
    return a, b


def _same_stack(ref_a: str, ref_b: str) -> bool:
    (base_a, layers_a), (base_b, layers_b) = split_layers(ref_a), split_layers(ref_b)
    path_a, side_a = parse_ref(base_a)
    path_b, side_b = parse_ref(base_b)
    return layers_a == layers_b and side_a == side_b and path_a.resolve() == path_b.resolve()
