"""Read a store: the typed API that the CLI, the analysis and the TUI share.

Readers see the rows written so far: an image row counts once its block is written and
it was not skipped; a caption counts once its text block is written and its image
counts. Arrays are read as contiguous slices and filtered in numpy. Opening a store runs
the structural checks of `store.verify` (self-containment, shapes, dtypes, attributes),
so a damaged or crafted file fails with one line; `check=True` (or MGAP_CHECK=1) also
compares each block read against its stored CRC32.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from mgap.core.errors import StoreError
from mgap.store import checksum, probe
from mgap.store import schema as S
from mgap.store.verify import structural_problems

#: what h5py and numpy raise on a file whose bytes are not what the schema says
_DAMAGE = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    UnicodeError,
    RuntimeError,
)


def _non_finite(path: Path, name: str) -> StoreError:
    return StoreError(
        f"{path}: rows of /{name} contain NaN or inf",
        hint="run `mgap verify` on it; re-extract, or import without those rows",
    )


def _damaged(path: Path, problems: list[str]) -> StoreError:
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return StoreError(
        f"{path} is damaged or not self-contained: {problems[0]}{more}",
        hint="run `mgap verify` for the full list, then extract or import it again",
    )


#: store rows read from HDF5 per block when loading embeddings (65,536 x 512 float32 = 128 MB)
READ_ROWS = 65_536


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


class Store:
    """A read-only view of one store file. Small metadata is read once; embeddings on demand."""

    def __init__(self, path: str | os.PathLike, *, check: bool | None = None) -> None:
        self.path = Path(path)
        self.check = os.environ.get("MGAP_CHECK", "") not in ("", "0") if check is None else check
        if not self.path.exists():
            raise StoreError(
                f"store {self.path} does not exist", hint="check the path or `mgap ls`"
            )
        if not self.path.is_file():
            raise StoreError(f"{self.path} is not a file", hint="give the path of a .h5 store")
        hazard = probe.probe(self.path)
        if hazard:
            raise StoreError(f"{self.path} is damaged: {hazard}", hint=probe.HINT)
        try:
            with h5py.File(self.path, "r", locking=False) as f:
                if S.IMAGE_IDS not in f or S.TEXT_CAPTIONS not in f:
                    raise StoreError(f"{self.path} is HDF5 but not an mgap store")
                problems = structural_problems(f, self.path)
                if problems:
                    raise _damaged(self.path, problems)
                self.attrs: dict[str, object] = {k: _attr(v) for k, v in f.attrs.items()}
                self._ids_all = _strings(f[S.IMAGE_IDS][...])
                self._paths_all = _strings(f[S.IMAGE_PATHS][...])
                self._valid_all = f[S.IMAGE_VALID][...].astype(bool)
                self._captions_all = _strings(f[S.TEXT_CAPTIONS][...])
                self._caption_rows_all = f[S.TEXT_IMAGE_ROW][...].astype(np.int64)
                self._primary_all = f[S.IMAGE_PRIMARY][...].astype(np.int64)
                self._labels_all = f[S.IMAGE_LABELS][...].astype(bool)
                self.category_names: list[str] = list(_strings(f[S.CATEGORY_NAMES][...]))
                self.supercategory_of: list[str] = list(_strings(f[S.CATEGORY_SUPER][...]))
                self._attributes_all = {
                    key: _strings(ds[...]) for key, ds in f.get(S.IMAGE_ATTRS, {}).items()
                }
                self._prompts = {
                    key: (list(_strings(g["names"][...])), g["embeddings"][...].astype(np.float64))
                    for key, g in f.get(S.PROMPTS, {}).items()
                }
                done = f[S.PROGRESS][...]
                self.has_images = S.IMAGE_EMB in f
                self.perturbations: list[str] = _perturbation_order(
                    self.attrs.get("perturbations"), f.get(S.IMAGE_PERTURBED, {})
                )
                self.has_texts = S.TEXT_EMB in f
                self.image_dim = int(f[S.IMAGE_EMB].shape[1]) if self.has_images else None
                self.text_dim = int(f[S.TEXT_EMB].shape[1]) if self.has_texts else None
                skipped_ids = _strings(f[S.SKIPPED_IDS][...]) if S.SKIPPED_IDS in f else []
                reasons = _strings(f[S.SKIPPED_REASONS][...]) if S.SKIPPED_REASONS in f else []
                self.block_rows = int(self.attrs.get("block_rows", S.BLOCK_ROWS))
        except StoreError:
            raise
        except _DAMAGE as exc:
            detail = " ".join(str(exc).split())[:200]
            raise StoreError(
                f"{self.path} is not a readable mgap store ({type(exc).__name__}: {detail})",
                hint="run `mgap verify` on it; create stores with `mgap extract` or `mgap import`",
            ) from exc
        self.images_done, self.texts_done = int(done[0]), int(done[1])
        self._check_row_indices()
        self.n_images_total = len(self._ids_all)
        self.n_texts_total = len(self._captions_all)
        self.skipped: dict[str, str] = dict(zip(skipped_ids, reasons, strict=False))
        journal = self.path.with_name(self.path.name + ".skipped.jsonl")
        if journal.exists():  # a run that is going on or was killed keeps its skips here
            for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    item = json.loads(line)
                    self.skipped[str(item["id"])] = str(item["reason"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a kill

    def _check_row_indices(self) -> None:
        """Indices that the row selection below relies on, so it never reads out of range."""
        n = len(self._ids_all)
        if not (0 <= self.images_done <= n) or not (
            0 <= self.texts_done <= len(self._captions_all)
        ):
            raise _damaged(self.path, ["/progress counts more rows than the store holds"])
        rows = self._caption_rows_all
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise _damaged(self.path, ["a caption points at an image row that does not exist"])
        primary = self._primary_all
        if primary.size and (primary.min() < -1 or primary.max() >= len(self.category_names)):
            raise _damaged(self.path, ["a primary category index is out of range"])

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
        """The given rows in `dtype`, read READ_ROWS store rows at a time into one output
        array: peak memory is the result plus one block, whatever the stored dtype."""
        stop = int(rows[-1]) + 1 if rows.size else 0
        try:
            with h5py.File(self.path, "r", locking=False) as f:
                ds = f[name]
                if self.check:
                    self._check_blocks(f, name, stop)
                out = np.empty((rows.size, ds.shape[1]), dtype=dtype)
                done = 0
                for lo in range(0, stop, READ_ROWS):
                    hi = min(lo + READ_ROWS, stop)
                    end = int(np.searchsorted(rows, hi))
                    if end > done:
                        first, last = int(rows[done]), int(rows[end - 1])
                        if last - first == end - done - 1:  # a contiguous run: no copy
                            ds.read_direct(out, np.s_[first : last + 1], np.s_[done:end])
                        else:
                            out[done:end] = ds[lo:hi][rows[done:end] - lo]
                        if not np.isfinite(out[done:end]).all():
                            raise _non_finite(self.path, name)
                        done = end
        except _DAMAGE as exc:
            raise StoreError(
                f"{self.path} could not be read ({type(exc).__name__})",
                hint="run `mgap verify` on it",
            ) from exc
        return out

    def _check_blocks(self, f: h5py.File, name: str, stop: int) -> None:
        sums = S.checksum_name(name)
        if sums not in f:
            raise StoreError(
                f"{self.path} has no block checksums (written by mgap before schema 2)",
                hint="run without --check, or extract it again",
            )
        valid = S.IMAGE_VALID if name.startswith("images/") else None
        bad = checksum.damaged_blocks(f, name, valid, sums, stop, self.block_rows)
        if bad:
            raise StoreError(
                f"{self.path}: /{name} block {bad[0]} (rows from {bad[0] * self.block_rows}) "
                f"fails its checksum",
                hint="the file is damaged; extract it again",
            )

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

    def summary(self) -> dict[str, object]:
        """The `mgap info --json` document (docs/design.md §6 keys first)."""
        return {
            "path": str(self.path),
            "status": self.status,
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "n_images": self.n_images,
            "n_texts": self.n_texts,
            "dim": self.dim,
            "skipped": len(self.skipped),
            "n_images_total": self.n_images_total,
            "n_texts_total": self.n_texts_total,
            "image_side": self.has_images,
            "text_side": self.has_texts,
            "n_categories": len(self.category_names),
            "geometry": self.geometry,
            "curvature": self.curvature,
            "perturbations": self.perturbations,
            "attrs": self.attrs,
        }


def open_store(path: str | os.PathLike, *, check: bool | None = None) -> Store:
    return Store(path, check=check)
