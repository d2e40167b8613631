"""Roll back a store whose metadata write failed half-way.

HDF5 is not transactional: a write that adds datasets or attributes (the final skip list
and status, the zero-shot prompts, the resume record) updates headers in place and
appends new ones, and one that fails part-way (the disk filled by another process after
mgap's space check, a file-size limit) can leave headers pointing past the end of the
file: a store nothing can open or resume. So before such a write the writer copies every
byte of the store outside the embedding payload (headers, heaps, strings and small
datasets: a few MB where the payload is GB) to `<store>.undo`, and on failure writes them
back and cuts the file to its old length. That needs no new space, and the payload is
never moved by a metadata write. A kill during the write leaves `<store>.undo` behind;
the next writer (holding the store's lock) rolls back first.

An undo copy belongs to exactly the file it was taken from: it records that file's device,
inode and a digest of the head of each payload extent (bytes no metadata write moves), and
a copy that does not match, cannot be read, or is a link is refused in one line naming it.
A new store (`create_store`, so also `--overwrite`) removes any undo copy left beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np

from mgap.core.errors import StoreError
from mgap.store import schema as S
from mgap.store.naming import fresh_sidecar, open_sidecar, refuse_link, sidecar
from mgap.store.space import disk_full, is_disk_full

#: bytes of each payload extent's head that tie an undo copy to its store
_HEAD = 1 << 16


def undo_path(path: Path) -> Path:
    return sidecar(path, ".undo")


def _payload(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each contiguous embedding dataset: what a metadata write never
    touches, so the undo copy can leave it out."""
    extents = []
    with h5py.File(path, "r", locking=False) as f:
        names = [S.IMAGE_EMB, S.TEXT_EMB]
        perturbed = f.get(S.IMAGE_PERTURBED)
        if isinstance(perturbed, h5py.Group):
            names += [S.perturbed_embeddings(setting) for setting in perturbed]
        for name in names:
            ds = f.get(name)
            offset = ds.id.get_offset() if isinstance(ds, h5py.Dataset) else None
            if offset is not None:
                extents.append((int(offset), int(ds.id.get_storage_size())))
    return sorted(extents)


def _regions(size: int, payload: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The complement of `payload` in [0, size)."""
    regions, at = [], 0
    for offset, length in payload:
        if offset > at:
            regions.append((at, min(offset, size) - at))
        at = max(at, offset + length)
    if at < size:
        regions.append((at, size - at))
    return [(o, n) for o, n in regions if n > 0]


def _identity(path: Path, payload: np.ndarray) -> np.ndarray:
    """(device, inode) of `path` and a SHA-256 of the head of each payload extent."""
    h = hashlib.sha256()
    with path.open("rb") as src:
        st = os.fstat(src.fileno())
        for offset, length in payload.tolist():
            src.seek(offset)
            h.update(src.read(min(length, _HEAD)))
    ident = [st.st_dev, st.st_ino, *np.frombuffer(h.digest(), dtype="<u8").tolist()]
    return np.asarray(ident, dtype=np.uint64)


def _reader(path: Path):
    """`path` open to read, never through a link."""
    return os.fdopen(open_sidecar(path, os.O_RDONLY), "rb")


def save(path: Path) -> None:
    """Write `<store>.undo` (fsynced) before a metadata write; DiskFullError if it cannot."""
    size = path.stat().st_size
    payload = _payload(path)
    regions = _regions(size, payload)
    table = np.asarray(payload, dtype=np.int64).reshape(-1, 2)
    tmp = sidecar(path, ".undo.creating")
    try:
        with path.open("rb") as src, os.fdopen(fresh_sidecar(tmp), "wb") as out:
            chunks = []
            for offset, length in regions:
                src.seek(offset)
                chunks.append(np.frombuffer(src.read(length), dtype=np.uint8))
            data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
            np.savez(
                out,
                size=np.int64(size),
                regions=np.asarray(regions, dtype=np.int64).reshape(-1, 2),
                data=data,
                payload=table,
                identity=_identity(path, table),
            )
            out.flush()
            os.fsync(out.fileno())
        refuse_link(undo_path(path))
        os.replace(tmp, undo_path(path))
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if is_disk_full(exc):
            raise disk_full(path, "a copy of its metadata") from None
        raise


def _load(path: Path, undo: Path) -> tuple[int, np.ndarray, np.ndarray]:
    """(size, regions, data) of `undo` once it is known to be a copy taken from `path`."""
    foreign = StoreError(
        f"{undo} is not an undo copy of {path} (it was taken from another file, or is "
        "not one mgap wrote)",
        hint=f"remove {undo}, or pass --overwrite to replace the store",
    )
    try:
        with _reader(undo) as fh, np.load(fh, allow_pickle=False) as saved:
            size, regions, data = int(saved["size"]), saved["regions"], saved["data"]
            payload, identity = saved["payload"], saved["identity"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise foreign from None
    if not np.array_equal(identity, _identity(path, payload)):
        raise foreign
    return size, regions, data


def restore(path: Path) -> bool:
    """Write the undo copy back and cut the file to its old length; True if there was one."""
    undo = undo_path(path)
    refuse_link(undo)
    if not undo.exists():
        return False
    size, regions, data = _load(path, undo)
    with path.open("r+b") as f:
        at = 0
        for offset, length in regions.tolist():
            f.seek(offset)
            f.write(data[at : at + length].tobytes())
            at += length
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
    undo.unlink()
    return True


def discard(path: Path) -> None:
    """Remove the undo copy (a link there is removed, never followed)."""
    undo_path(path).unlink(missing_ok=True)
