"""Create a store and fill it block by block so that a killed run loses nothing written.

The store is created in one go with every array allocated (contiguous, early
allocation). Afterwards each block write touches only raw data at fixed offsets plus
the /progress counter, written after the rows it counts; the file is opened and closed
around each block. Skipped items go to a JSON-lines journal next to the store as they
happen and move into the store when the run ends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from mgap import __version__
from mgap.core.errors import StoreError
from mgap.store import schema as S

_STR = h5py.string_dtype(encoding="utf-8")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class StoreLayout:
    """Everything known about a store's rows before the first forward pass."""

    image_ids: Sequence[str]
    image_paths: Sequence[str]
    captions: Sequence[str]
    caption_image_row: np.ndarray
    category_names: Sequence[str] = ()
    supercategories: Sequence[str] = ()
    primary: np.ndarray | None = None
    labels: np.ndarray | None = None
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        if len(self.image_paths) != n:
            raise StoreError("image ids and paths differ in length")
        if len(set(self.image_ids)) != n:
            raise StoreError("image ids are not unique")
        rows = np.asarray(self.caption_image_row, dtype=np.int64)
        if rows.shape != (len(self.captions),):
            raise StoreError("every caption needs exactly one image row")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise StoreError("a caption points at an image row that does not exist")
        self.caption_image_row = rows
        c = len(self.category_names)
        if self.primary is None:
            self.primary = np.full(n, -1, dtype=np.int32)
        if self.labels is None:
            self.labels = np.zeros((n, c), dtype=np.uint8)
        if not self.supercategories:
            self.supercategories = [""] * c


def _empty_file_check(path: Path) -> None:
    if path.exists():
        raise StoreError(
            f"{path} already exists", hint="pass --overwrite to replace it or --resume to continue"
        )


def _contiguous(f: h5py.File, name: str, shape: tuple[int, ...], dtype: str) -> None:
    """A contiguous dataset whose space is allocated now, so later writes change no metadata."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    f.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl)


def create_store(
    path: str | os.PathLike,
    layout: StoreLayout,
    provenance: Mapping[str, object],
    *,
    image_dim: int | None,
    text_dim: int | None,
    dtype: str = "float16",
    block_rows: int = S.BLOCK_ROWS,
    perturbations: Sequence[str] = (),
    perturb_seed: int = 0,
) -> StoreWriter:
    """Write a new store with every array allocated; refuses to replace an existing file.

    `perturbations` adds one image side per setting (see `schema`), allocated like the clean one.
    """
    path = Path(path)
    _empty_file_check(path)
    if dtype not in ("float16", "float32"):
        raise StoreError(f"unsupported store dtype {dtype!r}", hint="use float16 or float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".creating")
    n, m = len(layout.image_ids), len(layout.captions)
    with h5py.File(tmp, "w") as f:
        f.create_dataset(S.IMAGE_IDS, data=np.asarray(layout.image_ids, dtype=object), dtype=_STR)
        f.create_dataset(
            S.IMAGE_PATHS, data=np.asarray(layout.image_paths, dtype=object), dtype=_STR
        )
        _contiguous(f, S.IMAGE_VALID, (n,), "uint8")
        if image_dim is None:
            f[S.IMAGE_VALID][...] = 1  # text-only: every image is "reached" without decoding
        else:
            _contiguous(f, S.IMAGE_EMB, (n, image_dim), dtype)
            for setting in perturbations:
                _contiguous(f, S.perturbed_embeddings(setting), (n, image_dim), dtype)
        f.create_dataset(S.IMAGE_PRIMARY, data=np.asarray(layout.primary, dtype=np.int32))
        f.create_dataset(S.IMAGE_LABELS, data=np.asarray(layout.labels, dtype=np.uint8))
        for key, values in layout.attributes.items():
            f.create_dataset(
                f"{S.IMAGE_ATTRS}/{key}", data=np.asarray(values, dtype=object), dtype=_STR
            )
        f.create_dataset(
            S.TEXT_CAPTIONS, data=np.asarray(layout.captions, dtype=object), dtype=_STR
        )
        f.create_dataset(S.TEXT_IMAGE_ROW, data=layout.caption_image_row)
        if text_dim is not None:
            _contiguous(f, S.TEXT_EMB, (m, text_dim), dtype)
        f.create_dataset(
            S.CATEGORY_NAMES, data=np.asarray(list(layout.category_names), dtype=object), dtype=_STR
        )
        f.create_dataset(
            S.CATEGORY_SUPER,
            data=np.asarray(list(layout.supercategories), dtype=object),
            dtype=_STR,
        )
        _contiguous(f, S.PROGRESS, (2,), "int64")
        attrs = {key: "" for key in S.PROVENANCE_KEYS}
        attrs.update(
            schema_version=S.SCHEMA_VERSION,
            mgap_version=__version__,
            precision=dtype,
            block_rows=int(block_rows),
            created=now_iso(),
            geometry=S.GEOMETRY_EUCLIDEAN,
            curvature=0.0,
            perturbations=list(perturbations) if image_dim is not None else [],
            perturb_seed=int(perturb_seed),
        )
        attrs.update({k: v for k, v in provenance.items() if v is not None})
        attrs["status"] = S.STATUS_PARTIAL
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
    os.replace(tmp, path)
    return StoreWriter(path)


def _open_for_write(path: Path, timeout: float = 5.0) -> h5py.File:
    """Open `path` r+; another process's HDF5 lock (a reader that locks) is waited out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return h5py.File(path, "r+")
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class StoreWriter:
    """Writes embedding blocks into an existing store; every call opens and closes the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".skipped.jsonl")
        try:
            with h5py.File(self.path, "r") as f:
                self.n_images = int(f[S.IMAGE_IDS].shape[0])
                self.n_texts = int(f[S.TEXT_CAPTIONS].shape[0])
                self.has_images = S.IMAGE_EMB in f
                self.has_texts = S.TEXT_EMB in f
                self.image_dim = int(f[S.IMAGE_EMB].shape[1]) if self.has_images else None
                self.text_dim = int(f[S.TEXT_EMB].shape[1]) if self.has_texts else None
                self.status = str(f.attrs.get("status", ""))
                self.block_rows = int(f.attrs.get("block_rows", S.BLOCK_ROWS))
                self.perturbations: list[str] = sorted(f.get(S.IMAGE_PERTURBED, {}))
        except OSError as exc:
            raise StoreError(f"{self.path} is not a readable mgap store: {exc}") from exc

    def progress(self) -> tuple[int, int]:
        with h5py.File(self.path, "r") as f:
            done = f[S.PROGRESS][...]
        return int(done[0]), int(done[1])

    def _write_rows(
        self,
        dataset: str,
        start: int,
        rows: np.ndarray,
        slot: int,
        valid: np.ndarray | None,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        stop = start + rows.shape[0]
        with _open_for_write(self.path) as f:
            f[dataset][start:stop] = rows
            for name, values in (extra or {}).items():
                f[name][start:stop] = values
            if valid is not None:
                f[S.IMAGE_VALID][start:stop] = valid
            progress = f[S.PROGRESS]
            value = progress[...]
            value[slot] = stop
            progress[...] = value
            f.flush()

    def write_images(
        self,
        start: int,
        embeddings: np.ndarray,
        valid: np.ndarray,
        perturbed: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Rows [start, start+len) of the image side; `valid` marks rows that were embedded.

        `perturbed` holds the same rows of each perturbation side; all sides are written
        before /progress counts the block, so a resumed run never sees one side ahead.
        """
        if not self.has_images:
            raise StoreError(f"{self.path} has no image side")
        perturbed = dict(perturbed or {})
        if sorted(perturbed) != self.perturbations:
            raise StoreError(
                f"{self.path} stores perturbation sides {self.perturbations}, "
                f"got rows for {sorted(perturbed)}"
            )
        extra = {S.perturbed_embeddings(k): v for k, v in perturbed.items()}
        valid = np.asarray(valid, dtype=np.uint8)
        self._write_rows(S.IMAGE_EMB, start, embeddings, 0, valid, extra)

    def write_texts(self, start: int, embeddings: np.ndarray) -> None:
        if not self.has_texts:
            raise StoreError(f"{self.path} has no text side")
        self._write_rows(S.TEXT_EMB, start, embeddings, 1, None)

    def add_skipped(self, image_id: str, reason: str) -> None:
        with self.journal.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": image_id, "reason": reason}) + "\n")
            fh.flush()

    def journal_entries(self) -> dict[str, str]:
        if not self.journal.exists():
            return {}
        entries: dict[str, str] = {}
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            entries[str(item["id"])] = str(item["reason"])
        return entries

    def write_prompts(self, label_set: str, names: Sequence[str], embeddings: np.ndarray) -> None:
        """Zero-shot class embeddings (written once, after the rows; see schema)."""
        with _open_for_write(self.path) as f:
            group = f"{S.PROMPTS}/{label_set}"
            if group in f:
                del f[group]
            f.create_dataset(
                f"{group}/names", data=np.asarray(list(names), dtype=object), dtype=_STR
            )
            f.create_dataset(f"{group}/embeddings", data=np.asarray(embeddings, dtype=np.float32))

    def set_attrs(self, **attrs: object) -> None:
        with _open_for_write(self.path) as f:
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value

    def finish(self, status: str = S.STATUS_COMPLETE, **attrs: object) -> None:
        """Move the skipped journal into the store and set the final status."""
        skipped = self.journal_entries()
        with _open_for_write(self.path) as f:
            for name in (S.SKIPPED_IDS, S.SKIPPED_REASONS):
                if name in f:
                    del f[name]
            f.create_dataset(
                S.SKIPPED_IDS, data=np.asarray(list(skipped), dtype=object), dtype=_STR
            )
            f.create_dataset(
                S.SKIPPED_REASONS, data=np.asarray(list(skipped.values()), dtype=object), dtype=_STR
            )
            f.attrs["status"] = status
            f.attrs["finished"] = now_iso()
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
        if status == S.STATUS_COMPLETE:
            self.journal.unlink(missing_ok=True)
