"""Read a store: the typed API that the CLI, the analysis and the TUI share.

Readers see the rows written so far: an image row counts once its block is written and
it was not skipped; a caption counts once its text block is written and its image
counts. Opening a store reads its metadata and runs the structural checks of
`store.verify` (`store/metadata.py`), so a damaged or crafted file fails with one line;
embeddings are read as contiguous slices (`store/arrays.py`), and `check=True` (or
MGAP_CHECK=1) also compares each block read against its stored CRC32.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError
from mgap.store import schema as S
from mgap.store.arrays import read_rows
from mgap.store.layers import LayerSet, dataset_name
from mgap.store.metadata import read_metadata


class Store:
    """A read-only view of one store file. Small metadata is read once
    (`store/metadata.py`); embeddings on demand (`store/arrays.py`)."""

    def __init__(self, path: str | os.PathLike, *, check: bool | None = None) -> None:
        self.path = Path(path)
        self.check = os.environ.get("MGAP_CHECK", "") not in ("", "0") if check is None else check
        meta = read_metadata(self.path)
        self.attrs: dict[str, object] = meta.attrs
        self._ids_all, self._paths_all, self._valid_all = meta.ids, meta.paths, meta.valid
        self._captions_all, self._caption_rows_all = meta.captions, meta.caption_rows
        self._primary_all, self._labels_all = meta.primary, meta.labels
        self.category_names: list[str] = meta.category_names
        self.supercategory_of: list[str] = meta.supercategory_of
        self._attributes_all, self._prompts = meta.attributes, meta.prompts
        self.images_done, self.texts_done = meta.images_done, meta.texts_done
        self.has_images, self.has_texts = meta.has_images, meta.has_texts
        self.perturbations: list[str] = meta.perturbations
        self.image_dim, self.text_dim = meta.image_dim, meta.text_dim
        self.block_rows = meta.block_rows
        self.n_images_total = len(self._ids_all)
        self.n_texts_total = len(self._captions_all)
        self.skipped: dict[str, str] = meta.skipped
        self.layer_sets: dict[str, LayerSet] = meta.layers

    # ---- row selection -------------------------------------------------------------
    @cached_property
    def image_rows(self) -> np.ndarray:
        """Store rows of the images that count (embedded, not skipped)."""
        valid = self._valid_all.copy()
        if not self.has_images and self.has_texts:
            # text-only: an image counts once every caption of it is written
            pending = self._caption_rows_all[self.texts_done :]
            valid[np.unique(pending)] = False
        return np.flatnonzero(valid)

    @cached_property
    def text_rows(self) -> np.ndarray:
        """Store rows of the captions that count."""
        counts = np.zeros(self.n_images_total, dtype=bool)
        counts[self.image_rows] = True
        keep = counts[self._caption_rows_all]
        if self.has_texts:
            keep &= np.arange(self.n_texts_total) < self.texts_done
        return np.flatnonzero(keep)

    # ---- every row, written or not --------------------------------------------------
    @property
    def all_image_ids(self) -> np.ndarray:
        """The id of every image row, including rows not embedded (yet)."""
        return self._ids_all

    @property
    def all_captions(self) -> np.ndarray:
        """Every caption, including captions not embedded (yet)."""
        return self._captions_all

    @property
    def all_caption_image_rows(self) -> np.ndarray:
        """The image row of every caption, including captions not embedded (yet)."""
        return self._caption_rows_all

    # ---- metadata ------------------------------------------------------------------
    @property
    def status(self) -> str:
        return str(self.attrs.get("status", ""))

    @property
    def model(self) -> str:
        return str(self.attrs.get("model", ""))

    @property
    def dataset(self) -> str:
        return str(self.attrs.get("dataset", ""))

    @property
    def split(self) -> str:
        return str(self.attrs.get("split", ""))

    @property
    def geometry(self) -> str:
        return str(self.attrs.get("geometry", S.GEOMETRY_EUCLIDEAN)) or S.GEOMETRY_EUCLIDEAN

    @property
    def curvature(self) -> float:
        return float(self.attrs.get("curvature", 0.0) or 0.0)

    @property
    def dim(self) -> int | None:
        return self.image_dim if self.image_dim is not None else self.text_dim

    @property
    def n_images(self) -> int:
        return int(self.image_rows.size)

    @property
    def n_texts(self) -> int:
        return int(self.text_rows.size)

    @property
    def image_ids(self) -> np.ndarray:
        return self._ids_all[self.image_rows]

    @property
    def image_paths(self) -> np.ndarray:
        return self._paths_all[self.image_rows]

    @property
    def captions(self) -> np.ndarray:
        return self._captions_all[self.text_rows]

    @cached_property
    def text_image_index(self) -> np.ndarray:
        """For each caption that counts, the index of its image among `image_ids`."""
        position = np.full(self.n_images_total, -1, dtype=np.int64)
        position[self.image_rows] = np.arange(self.image_rows.size)
        return position[self._caption_rows_all[self.text_rows]]

    @property
    def primary_category(self) -> np.ndarray:
        """Index into `category_names` per image, -1 where the image has none."""
        return self._primary_all[self.image_rows]

    @property
    def labels(self) -> np.ndarray:
        """(n_images, n_categories) bool: every category present in each image."""
        return self._labels_all[self.image_rows]

    @property
    def attributes(self) -> dict[str, np.ndarray]:
        return {key: values[self.image_rows] for key, values in self._attributes_all.items()}

    def primary_names(self) -> np.ndarray:
        names = np.asarray([*self.category_names, ""], dtype=object)
        return names[self.primary_category]

    @property
    def prompt_sets(self) -> list[str]:
        return sorted(self._prompts)

    def prompt_embeddings(self, label_set: str = S.PROMPT_SET_CATEGORY):
        """(class names, (K, d) float64 prompt embeddings) for zero-shot, or None if absent."""
        return self._prompts.get(label_set)

    # ---- embeddings ----------------------------------------------------------------
    def _read(self, name: str, rows: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
        return read_rows(self.path, name, rows, dtype, check=self.check, block_rows=self.block_rows)

    def image_embeddings(self, dtype: np.dtype | type = np.float64) -> np.ndarray:
        if not self.has_images:
            raise StoreError(f"{self.path.name} has no image embeddings (a text-only model)")
        return self._read(S.IMAGE_EMB, self.image_rows, dtype)

    def perturbed_image_embeddings(
        self, setting: str, dtype: np.dtype | type = np.float64
    ) -> np.ndarray:
        """The image side of one perturbation setting, rows aligned with `image_embeddings`."""
        if setting not in self.perturbations:
            stored = ", ".join(self.perturbations) or "none"
            raise StoreError(
                f"{self.path.name} has no perturbation side {setting!r} (stored: {stored})",
                hint="extract with --perturb SETTING or --perturb-suite rtml",
            )
        return self._read(S.perturbed_embeddings(setting), self.image_rows, dtype)

    def text_embeddings(self, dtype: np.dtype | type = np.float64) -> np.ndarray:
        if not self.has_texts:
            raise StoreError(f"{self.path.name} has no text embeddings (an image-only model)")
        return self._read(S.TEXT_EMB, self.text_rows, dtype)

    def embedding_subset(
        self, side: str, positions: np.ndarray, dtype: np.dtype | type = np.float64
    ) -> np.ndarray:
        """Rows `positions` of `image_embeddings()` or `text_embeddings()` (`side` "image" or
        "text"), in that order, reading only those rows: a sample without the whole side."""
        name, rows = {"image": (S.IMAGE_EMB, "image_rows"), "text": (S.TEXT_EMB, "text_rows")}[side]
        if not (self.has_images if side == "image" else self.has_texts):
            raise StoreError(f"{self.path.name} has no {side} embeddings")
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size < 2 or (positions[1:] >= positions[:-1]).all():  # no reordering
            return self._read(name, getattr(self, rows)[positions], dtype)
        order = np.argsort(positions, kind="stable")
        sorted_rows = getattr(self, rows)[positions[order]]
        got = self._read(name, sorted_rows, dtype)
        out = np.empty_like(got)
        out[order] = got
        return out

    # ---- per-layer pooled states (mgap extract --layers) -----------------------------
    def layer_set(self, side: str) -> LayerSet:
        """The layers stored for `side`; a one-line refusal when there are none."""
        found = self.layer_sets.get(side)
        if found is None:
            raise StoreError(
                f"{self.path.name} has no per-layer {side} states",
                hint="extract with --layers all (or a list such as 0,4,8,-1)",
            )
        return found

    def layer_embeddings(
        self,
        side: str,
        layer: int,
        space: str = "raw",
        dtype: np.dtype | type = np.float64,
        positions: np.ndarray | None = None,
    ) -> np.ndarray:
        """One layer's pooled vectors of `side`, rows aligned with `image_embeddings()` or
        `text_embeddings()` (or only `positions` of them, ascending); `layer` may be negative."""
        found = self.layer_set(side)
        try:
            index = found.resolve(layer)
        except IndexError:
            index = -1
        if index not in found.layers:
            raise StoreError(
                f"{self.path.name} has no {side} layer {layer} "
                f"(stored: {', '.join(map(str, found.layers))})",
                hint="pick a stored layer, or extract again with --layers",
            )
        if space not in found.spaces:
            raise StoreError(
                f"{self.path.name} has no {space!r} {side} layers (stored: {', '.join(found.spaces)})",
                hint="pick --space " + " or ".join(found.spaces),
            )
        rows = self.image_rows if side == "image" else self.text_rows
        if positions is not None:
            rows = rows[np.asarray(positions, dtype=np.int64)]
        return self._read(dataset_name(side, space, index), rows, dtype)


def open_store(path: str | os.PathLike, *, check: bool | None = None) -> Store:
    return Store(path, check=check)
