"""Create a store and fill it block by block so that a killed run loses nothing written.

The store is created in one go with every array allocated (contiguous, early
allocation). Afterwards each block write touches only raw data at fixed offsets plus
the /progress counter, written after the rows it counts; the file is opened and closed
around each block. Skipped items go to a JSON-lines journal next to the store as they
happen and move into the store when the run ends.

Every block write also stores the block's CRC32 (see `store.checksum`). Writes that grow
the file check the disk first (see `store.space`), and a full disk raises `DiskFullError`
without any further HDF5 write, so the store stays resumable. Strings and attribute names
are validated before the file exists: HDF5 cannot hold NUL bytes or lone surrogates, and
a `/` in a name would make a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from mgap import __version__
from mgap.core.errors import StoreError
from mgap.store import checksum, probe, undo
from mgap.store import schema as S
from mgap.store.layers import LayerSet, dataset_name, read_layer_sets, write_layer_attrs
from mgap.store.naming import fresh_sidecar, make_folder, open_sidecar, sidecar
from mgap.store.space import disk_full, ensure_space, is_disk_full
from mgap.store.verify import structural_problems

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
        for key in self.attributes:
            _check_name(key)
        for what, values in (
            ("image id", self.image_ids),
            ("image path", self.image_paths),
            ("caption", self.captions),
            ("category", self.category_names),
            ("supercategory", self.supercategories),
            *((f"attribute {key!r}", v) for key, v in self.attributes.items()),
        ):
            _check_strings(what, values)

    def digest(self) -> str:
        """SHA-256 of every row's id, path, captions, caption rows, categories and
        attributes: a resume compares it to tell edited inputs from the same ones."""
        h = hashlib.sha256()
        parts = [self.image_ids, self.image_paths, self.captions, self.category_names]
        parts += [self.supercategories]
        parts += [[key, *values] for key, values in sorted(self.attributes.items())]
        for part in parts:
            h.update(json.dumps([str(x) for x in part]).encode())
        h.update(np.asarray(self.caption_image_row, dtype="<i8").tobytes())
        h.update(np.asarray(self.primary, dtype="<i4").tobytes())
        h.update(np.asarray(self.labels, dtype="u1").tobytes())
        return h.hexdigest()

    def string_bytes(self) -> int:
        """Roughly the bytes the strings take in the file (for the disk-space check)."""
        values = [*self.image_ids, *self.image_paths, *self.captions]
        for column in self.attributes.values():
            values.extend(column)
        return sum(len(str(v)) + 16 for v in values)


def _check_name(key: object) -> None:
    if not isinstance(key, str) or not key.strip():
        raise StoreError(f"a column has an empty name ({key!r})", hint="give every column a header")
    if "/" in key or key in (".", "..") or not key.isprintable():
        raise StoreError(
            f"column name {key!r} cannot name a store attribute ('/', '.', '..' and control "
            "characters are not allowed)",
            hint="rename the column in the CSV/JSONL file",
        )
    _check_strings("column name", [key])


def _check_strings(what: str, values: Sequence[object]) -> None:
    """Every value a str that HDF5 can store: no NUL byte, encodable as UTF-8."""
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise StoreError(
                f"{what} {i} is {type(value).__name__} {value!r:.60}, not text",
                hint="fix that record in the annotation file",
            )
        if "\x00" in value:
            raise StoreError(
                f"{what} {i} ({value[:40]!r}) contains a NUL byte",
                hint="remove it from the annotation file",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise StoreError(
                f"{what} {i} ({value[:40]!r}) is not valid Unicode (a lone surrogate)",
                hint="fix the encoding of the annotation file",
            ) from None


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


def _payload_bytes(n: int, m: int, image_dim: int | None, text_dim: int | None, dtype: str) -> int:
    size = np.dtype(dtype).itemsize
    return n * (image_dim or 0) * size + m * (text_dim or 0) * size + n * 8 + m * 8


def _check_create_args(
    dtype: str, block_rows: int, image_dim: int | None, text_dim: int | None
) -> None:
    if dtype not in ("float16", "float32"):
        raise StoreError(f"unsupported store dtype {dtype!r}", hint="use float16 or float32")
    if isinstance(block_rows, bool) or not 1 <= int(block_rows) <= S.MAX_BLOCK_ROWS:
        raise StoreError(
            f"block rows must be in 1..{S.MAX_BLOCK_ROWS}, got {block_rows}",
            hint=f"pass --block-rows between 1 and {S.MAX_BLOCK_ROWS}",
        )
    if image_dim is not None and text_dim is not None and image_dim != text_dim:
        raise StoreError(
            f"image dim {image_dim} differs from text dim {text_dim}: not one embedding space",
            hint="store each tower on its own (an image-only and a text-only model)",
        )


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
    layers: Mapping[str, LayerSet] | None = None,
) -> StoreWriter:
    """Write a new store with every array allocated; refuses to replace an existing file.

    `perturbations` adds one image side per setting (see `schema`), allocated like the clean
    one; `layers` one dataset per side, space and layer (`store.layers`, widths filled in).
    """
    path = Path(path)
    _empty_file_check(path)
    _check_create_args(dtype, block_rows, image_dim, text_dim)
    make_folder(path.parent)
    tmp = sidecar(path, ".creating")
    n, m = len(layout.image_ids), len(layout.captions)
    payload = _payload_bytes(n, m, image_dim, text_dim, dtype) + 2 * layout.string_bytes()
    payload += len(perturbations) * _payload_bytes(n, 0, image_dim, None, dtype)
    layers = dict(layers or {})
    payload += _layer_bytes(layers, {"image": n, "text": m}, dtype)
    ensure_space(tmp, payload)
    try:
        _write_new_store(
            tmp,
            layout,
            {
                **provenance,
                "perturbations": list(perturbations) if image_dim is not None else [],
                "perturb_seed": int(perturb_seed),
            },
            image_dim,
            text_dim,
            dtype,
            int(block_rows),
            layers,
        )
    except BaseException as exc:
        if not isinstance(exc, StoreError):  # a refused link stays where it was found
            tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(path, "a new store") from None
        raise
    _drop_stale_sidecars(path)
    os.replace(tmp, path)
    probe.trust(path)
    return StoreWriter(path)


def _drop_stale_sidecars(path: Path) -> None:
    """An undo copy or skips that a killed run left belong to the old file, not this one
    (links there are removed, never followed)."""
    undo.discard(path)
    sidecar(path, ".skipped.jsonl").unlink(missing_ok=True)


@contextlib.contextmanager
def _new_file(tmp: Path) -> Iterator[h5py.File]:
    """`tmp` created as a new file of ours (O_EXCL, no link followed) before HDF5 opens
    it, so a link planted at `<store>.creating` is refused rather than written through."""
    os.close(fresh_sidecar(tmp))
    claimed = os.lstat(tmp).st_ino
    with h5py.File(tmp, "w") as f:
        if os.fstat(f.id.get_vfd_handle()).st_ino != claimed:
            raise StoreError(f"{tmp} was replaced while mgap created it", hint="retry")
        yield f


def layer_datasets(layers: LayerSet) -> list[str]:
    """The datasets of one side's layer set, space by space, layer by layer."""
    return [dataset_name(layers.side, space, k) for space in layers.spaces for k in layers.layers]


def _layer_bytes(layers: Mapping[str, LayerSet], rows: Mapping[str, int], dtype: str) -> int:
    size = np.dtype(dtype).itemsize
    return sum(
        rows[side] * len(ls.layers) * ls.widths[space] * size
        for side, ls in layers.items()
        for space in ls.spaces
    )


def _allocate_layers(
    f: h5py.File, layers: Mapping[str, LayerSet], rows: Mapping[str, int], dtype: str, block: int
) -> None:
    """Every per-layer dataset and its block checksums, allocated like the embeddings."""
    for side, ls in layers.items():
        write_layer_attrs(
            f, side, count=ls.count, layers=list(ls.layers), pooling=ls.pooling, lens=ls.lens
        )
        for space in ls.spaces:
            for k in ls.layers:
                name = dataset_name(side, space, k)
                _contiguous(f, name, (rows[side], ls.widths[space]), dtype)
                sums = checksum.n_blocks(rows[side], block)
                _contiguous(f, S.checksum_name(name), (sums,), "uint32")


def _write_new_store(
    tmp: Path,
    layout: StoreLayout,
    provenance: Mapping[str, object],
    image_dim: int | None,
    text_dim: int | None,
    dtype: str,
    block_rows: int,
    layers: Mapping[str, LayerSet],
) -> None:
    n, m = len(layout.image_ids), len(layout.captions)
    with _new_file(tmp) as f:
        f.create_dataset(S.IMAGE_IDS, data=np.asarray(layout.image_ids, dtype=object), dtype=_STR)
        f.create_dataset(
            S.IMAGE_PATHS, data=np.asarray(layout.image_paths, dtype=object), dtype=_STR
        )
        _contiguous(f, S.IMAGE_VALID, (n,), "uint8")
        if image_dim is None:
            f[S.IMAGE_VALID][...] = 1  # text-only: every image is "reached" without decoding
        else:
            _contiguous(f, S.IMAGE_EMB, (n, image_dim), dtype)
            _contiguous(
                f, S.checksum_name(S.IMAGE_EMB), (checksum.n_blocks(n, block_rows),), "uint32"
            )
            for setting in provenance["perturbations"]:
                side = S.perturbed_embeddings(setting)
                _contiguous(f, side, (n, image_dim), dtype)
                _contiguous(f, S.checksum_name(side), (checksum.n_blocks(n, block_rows),), "uint32")
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
            _contiguous(
                f, S.checksum_name(S.TEXT_EMB), (checksum.n_blocks(m, block_rows),), "uint32"
            )
        f.create_dataset(
            S.CATEGORY_NAMES, data=np.asarray(list(layout.category_names), dtype=object), dtype=_STR
        )
        f.create_dataset(
            S.CATEGORY_SUPER,
            data=np.asarray(list(layout.supercategories), dtype=object),
            dtype=_STR,
        )
        _allocate_layers(f, layers, {"image": n, "text": m}, dtype, block_rows)
        _contiguous(f, S.PROGRESS, (2,), "int64")
        _write_attrs(f, provenance, dtype, block_rows)


def _write_attrs(
    f: h5py.File, provenance: Mapping[str, object], dtype: str, block_rows: int
) -> None:
    attrs = {key: "" for key in S.PROVENANCE_KEYS}
    attrs.update(
        schema_version=S.SCHEMA_VERSION,
        mgap_version=__version__,
        precision=dtype,
        block_rows=block_rows,
        created=now_iso(),
        geometry=S.GEOMETRY_EUCLIDEAN,
        curvature=0.0,
    )
    attrs.update({k: v for k, v in provenance.items() if v is not None})
    attrs["status"] = S.STATUS_PARTIAL
    for key, value in attrs.items():
        f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value


@contextlib.contextmanager
def _open_for_write(path: Path, timeout: float = 5.0) -> Iterator[h5py.File]:
    """`path` open r+; another process's HDF5 lock (a reader that locks) is waited out.

    A write that completes marks the file trusted (`store.probe`): this process wrote it,
    so reopening it needs no probe.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            f = h5py.File(path, "r+")
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with f:
        yield f
    probe.trust(path)


@contextlib.contextmanager
def _released_errors() -> Iterator[list[BaseException]]:
    """Errors HDF5 reports only when h5py releases an object id (a write that fails as a
    dataset is freed): h5py prints them through sys.unraisablehook or sys.excepthook and
    goes on. Collected here instead, so that such a write counts as failed."""
    released: list[BaseException] = []
    hooks = sys.unraisablehook, sys.excepthook
    sys.unraisablehook = lambda unraisable: released.append(unraisable.exc_value)
    sys.excepthook = lambda kind, value, tb: released.append(value)
    try:
        yield released
    finally:
        sys.unraisablehook, sys.excepthook = hooks


def _layer_rows(
    path: Path, stored: Sequence[str], given: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """`given` if it holds exactly the store's layer datasets of one side."""
    given = dict(given or {})
    if sorted(given) != sorted(stored):
        raise StoreError(
            f"{path} stores {len(stored)} per-layer datasets on this side, got rows for "
            f"{len(given)} ({', '.join(sorted(set(stored) ^ set(given))[:3])} differ)"
        )
    return given


class StoreWriter:
    """Writes embedding blocks into an existing store; every call opens and closes the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.journal = sidecar(self.path, ".skipped.jsonl")
        undo.restore(self.path)  # a metadata write that was killed half-way
        hazard = probe.probe(self.path)
        if hazard:
            raise StoreError(
                f"{self.path} cannot be written: it is damaged ({hazard})",
                hint="pass --overwrite to replace it",
            )
        try:
            with h5py.File(self.path, "r") as f:
                problems = structural_problems(f, self.path)
                if problems:
                    raise StoreError(
                        f"{self.path} cannot be written: {problems[0]}",
                        hint="run `mgap verify` on it, or pass --overwrite to replace it",
                    )
                self.n_images = int(f[S.IMAGE_IDS].shape[0])
                self.n_texts = int(f[S.TEXT_CAPTIONS].shape[0])
                self.has_images = S.IMAGE_EMB in f
                self.has_texts = S.TEXT_EMB in f
                self.image_dim = int(f[S.IMAGE_EMB].shape[1]) if self.has_images else None
                self.text_dim = int(f[S.TEXT_EMB].shape[1]) if self.has_texts else None
                self.status = str(f.attrs.get("status", ""))
                self.block_rows = int(f.attrs.get("block_rows", S.BLOCK_ROWS))
                self.perturbations: list[str] = sorted(f.get(S.IMAGE_PERTURBED, {}))
                self.layers = {s: layer_datasets(ls) for s, ls in read_layer_sets(f).items()}
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise StoreError(
                f"{self.path} is not a readable mgap store ({type(exc).__name__})",
                hint="pass --overwrite to replace it",
            ) from exc

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
        """Rows, validity flags and block CRC32s first, then /progress: all preallocated."""
        if start % self.block_rows:
            raise StoreError(f"a block write must start at a multiple of {self.block_rows}")
        stop = start + rows.shape[0]
        try:
            with _open_for_write(self.path) as f:
                for name, values in ((dataset, rows), *(extra or {}).items()):
                    self._write_block(f, name, start, values, valid)
                if valid is not None:
                    f[S.IMAGE_VALID][start:stop] = valid
                progress = f[S.PROGRESS]
                value = progress[...]
                value[slot] = stop
                progress[...] = value
                f.flush()
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(self.path, "a block") from None
            raise

    def _write_block(
        self, f: h5py.File, name: str, start: int, rows: np.ndarray, valid: np.ndarray | None
    ) -> None:
        """Rows of one dataset and the CRC32 of each block they fill (see `store.checksum`)."""
        ds = f[name]
        rows = np.ascontiguousarray(rows, dtype=ds.dtype)
        ds[start : start + rows.shape[0]] = rows
        sums = f.get(S.checksum_name(name))
        if sums is not None:
            first = start // self.block_rows
            crcs = checksum.block_crcs(rows, valid, self.block_rows)
            sums[first : first + crcs.size] = crcs

    def write_images(
        self,
        start: int,
        embeddings: np.ndarray,
        valid: np.ndarray,
        perturbed: Mapping[str, np.ndarray] | None = None,
        layers: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Rows [start, start+len) of the image side; `valid` marks rows that were embedded.

        `perturbed` holds the same rows of each perturbation side, `layers` of each layer
        dataset (by name); all are written before /progress counts the block, so a resumed
        run never sees one side ahead.
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
        extra.update(_layer_rows(self.path, self.layers.get("image", []), layers))
        valid = np.asarray(valid, dtype=np.uint8)
        self._write_rows(S.IMAGE_EMB, start, embeddings, 0, valid, extra)

    def write_texts(
        self, start: int, embeddings: np.ndarray, layers: Mapping[str, np.ndarray] | None = None
    ) -> None:
        if not self.has_texts:
            raise StoreError(f"{self.path} has no text side")
        extra = _layer_rows(self.path, self.layers.get("text", []), layers)
        self._write_rows(S.TEXT_EMB, start, embeddings, 1, None, extra)

    def add_skipped(self, image_id: str, reason: str) -> None:
        line = json.dumps({"id": image_id, "reason": reason}) + "\n"
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
            with os.fdopen(open_sidecar(self.journal, flags), "a+b") as fh:
                if fh.seek(0, os.SEEK_END) > 0:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = "\n" + line  # end a line cut by a kill or a full disk
                fh.write(line.encode("utf-8"))
                fh.flush()
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(self.journal, "the skip journal") from None
            raise

    def journal_entries(self) -> dict[str, str]:
        try:
            with os.fdopen(open_sidecar(self.journal, os.O_RDONLY), "rb") as fh:
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        entries: dict[str, str] = {}
        for line in text.splitlines():
            try:
                item = json.loads(line)
                entries[str(item["id"])] = str(item["reason"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill
        return entries

    @contextlib.contextmanager
    def _metadata_write(self, grow_bytes: int, what: str) -> Iterator[h5py.File]:
        """The store open r+ for a write that adds or changes HDF5 metadata.

        The space is checked first, and the bytes outside the payload are copied aside
        (`store.undo`): if the write fails anyway (the disk filled after the check), the
        store is rolled back to what it was, partial and resumable, and a full disk is
        reported in one line.
        """
        ensure_space(self.path, grow_bytes)
        undo.save(self.path)
        try:
            with _released_errors() as released, _open_for_write(self.path) as f:
                yield f
            if released:
                raise released[0]
        except BaseException as exc:
            with contextlib.suppress(OSError):  # else the next writer rolls back
                undo.restore(self.path)
            if is_disk_full(exc):
                raise disk_full(self.path, what) from None
            raise
        undo.discard(self.path)

    def write_prompts(self, label_set: str, names: Sequence[str], embeddings: np.ndarray) -> None:
        """Zero-shot class embeddings (written once, after the rows; see schema)."""
        names = list(names)
        _check_strings("class name", names)
        grow = np.asarray(embeddings).size * 4 + sum(len(x) + 16 for x in names)
        with self._metadata_write(grow, "the zero-shot prompts") as f:
            group = f"{S.PROMPTS}/{label_set}"
            if group in f:
                del f[group]
            f.create_dataset(
                f"{group}/names", data=np.asarray(list(names), dtype=object), dtype=_STR
            )
            f.create_dataset(f"{group}/embeddings", data=np.asarray(embeddings, dtype=np.float32))

    def set_attrs(self, **attrs: object) -> None:
        with self._metadata_write(0, "its attributes") as f:
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value

    def finish(self, status: str = S.STATUS_COMPLETE, **attrs: object) -> None:
        """Move the skipped journal into the store and set the final status."""
        skipped = self.journal_entries()
        grow = sum(len(k) + len(v) + 32 for k, v in skipped.items())
        with self._metadata_write(grow, "its final status") as f:
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
