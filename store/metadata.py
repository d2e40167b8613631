"""What opening a store reads once: its attributes, row index arrays and small tables.

`read_metadata` runs the structural checks of `store.verify` (self-containment, shapes,
dtypes, attributes) first, so a damaged or crafted file fails with one line; the
embeddings themselves are read on demand by `store/arrays.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mgap.core.errors import StoreError
from mgap.store import probe
from mgap.store import schema as S
from mgap.store.layers import LayerSet, read_layer_sets
from mgap.store.verify import structural_problems

#: what h5py and numpy raise on a file whose bytes are not what the schema says
DAMAGE = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    UnicodeError,
    RuntimeError,
)


def damaged(path: Path, problems: list[str]) -> StoreError:
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return StoreError(
        f"{path} is damaged or not self-contained: {problems[0]}{more}",
        hint="run `mgap verify` for the full list, then extract or import it again",
    )


def _strings(data: np.ndarray) -> np.ndarray:
    out = np.empty(data.shape, dtype=object)
    for i, value in enumerate(data):
        out[i] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return out


def _attr(value: object) -> object:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _perturbation_order(attr: object, present: object) -> list[str]:
    """Perturbation settings in the order they were given, keeping only those stored."""
    try:
        listed = json.loads(attr) if isinstance(attr, str) and attr else []
    except json.JSONDecodeError:
        listed = []
    stored = set(present)
    return [name for name in listed if name in stored] + sorted(stored - set(listed))


@dataclass
class StoreMetadata:
    """Every row of the store (written or not) and its small tables, as read at open."""

    attrs: dict[str, object]
    ids: np.ndarray
    paths: np.ndarray
    valid: np.ndarray
    captions: np.ndarray
    caption_rows: np.ndarray
    primary: np.ndarray
    labels: np.ndarray
    category_names: list[str]
    supercategory_of: list[str]
    attributes: dict[str, np.ndarray]
    prompts: dict[str, tuple[list[str], np.ndarray]]
    images_done: int
    texts_done: int
    has_images: bool
    has_texts: bool
    perturbations: list[str]
    image_dim: int | None
    text_dim: int | None
    skipped: dict[str, str]
    block_rows: int
    layers: dict[str, LayerSet]


def _refuse_non_store(path: Path) -> None:
    if not path.exists():
        raise StoreError(f"store {path} does not exist", hint="check the path or `mgap ls`")
    if not path.is_file():
        raise StoreError(f"{path} is not a file", hint="give the path of a .h5 store")
    hazard = probe.probe(path)
    if hazard:
        raise StoreError(f"{path} is damaged: {hazard}", hint=probe.HINT)


def _from_file(f: h5py.File, path: Path) -> StoreMetadata:
    if S.IMAGE_IDS not in f or S.TEXT_CAPTIONS not in f:
        raise StoreError(f"{path} is HDF5 but not an mgap store")
    problems = structural_problems(f, path)
    if problems:
        raise damaged(path, problems)
    attrs: dict[str, object] = {k: _attr(v) for k, v in f.attrs.items()}
    done = f[S.PROGRESS][...]
    skipped_ids = _strings(f[S.SKIPPED_IDS][...]) if S.SKIPPED_IDS in f else []
    reasons = _strings(f[S.SKIPPED_REASONS][...]) if S.SKIPPED_REASONS in f else []
    return StoreMetadata(
        attrs=attrs,
        ids=_strings(f[S.IMAGE_IDS][...]),
        paths=_strings(f[S.IMAGE_PATHS][...]),
        valid=f[S.IMAGE_VALID][...].astype(bool),
        captions=_strings(f[S.TEXT_CAPTIONS][...]),
        caption_rows=f[S.TEXT_IMAGE_ROW][...].astype(np.int64),
        primary=f[S.IMAGE_PRIMARY][...].astype(np.int64),
        labels=f[S.IMAGE_LABELS][...].astype(bool),
        category_names=list(_strings(f[S.CATEGORY_NAMES][...])),
        supercategory_of=list(_strings(f[S.CATEGORY_SUPER][...])),
        attributes={key: _strings(ds[...]) for key, ds in f.get(S.IMAGE_ATTRS, {}).items()},
        prompts={
            key: (list(_strings(g["names"][...])), g["embeddings"][...].astype(np.float64))
            for key, g in f.get(S.PROMPTS, {}).items()
        },
        images_done=int(done[0]),
        texts_done=int(done[1]),
        has_images=S.IMAGE_EMB in f,
        has_texts=S.TEXT_EMB in f,
        perturbations=_perturbation_order(attrs.get("perturbations"), f.get(S.IMAGE_PERTURBED, {})),
        image_dim=int(f[S.IMAGE_EMB].shape[1]) if S.IMAGE_EMB in f else None,
        text_dim=int(f[S.TEXT_EMB].shape[1]) if S.TEXT_EMB in f else None,
        skipped=dict(zip(skipped_ids, reasons, strict=False)),
        block_rows=int(attrs.get("block_rows", S.BLOCK_ROWS)),
        layers=read_layer_sets(f),
    )


def _check_row_indices(meta: StoreMetadata, path: Path) -> None:
    """Indices that the reader's row selection relies on, so it never reads out of range."""
    n = len(meta.ids)
    if not (0 <= meta.images_done <= n) or not (0 <= meta.texts_done <= len(meta.captions)):
        raise damaged(path, ["/progress counts more rows than the store holds"])
    rows = meta.caption_rows
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise damaged(path, ["a caption points at an image row that does not exist"])
    primary = meta.primary
    if primary.size and (primary.min() < -1 or primary.max() >= len(meta.category_names)):
        raise damaged(path, ["a primary category index is out of range"])


def _journal_skips(path: Path) -> dict[str, str]:
    """The skips a run that is going on or was killed keeps in `<store>.skipped.jsonl`."""
    journal = path.with_name(path.name + ".skipped.jsonl")
    skipped: dict[str, str] = {}
    if not journal.exists():
        return skipped
    for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
            skipped[str(item["id"])] = str(item["reason"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill
    return skipped


def read_metadata(path: Path) -> StoreMetadata:
    """Check that `path` is a whole mgap store and read everything but its embeddings."""
    _refuse_non_store(path)
    try:
        with h5py.File(path, "r", locking=False) as f:
            meta = _from_file(f, path)
    except StoreError:
        raise
    except DAMAGE as exc:
        detail = " ".join(str(exc).split())[:200]
        raise StoreError(
            f"{path} is not a readable mgap store ({type(exc).__name__}: {detail})",
            hint="run `mgap verify` on it; create stores with `mgap extract` or `mgap import`",
        ) from exc
    _check_row_indices(meta, path)
    meta.skipped.update(_journal_skips(path))
    return meta
