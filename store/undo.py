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
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mgap.store import schema as S
from mgap.store.space import disk_full, is_disk_full


def undo_path(path: Path) -> Path:
    return path.with_name(path.name + ".undo")


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


def save(path: Path) -> None:
    """Write `<store>.undo` (fsynced) before a metadata write; DiskFullError if it cannot."""
    size = path.stat().st_size
    regions = _regions(size, _payload(path))
    tmp = path.with_name(path.name + ".undo.creating")
    try:
        with path.open("rb") as src, tmp.open("wb") as out:
            chunks = []
            for offset, length in regions:
                src.seek(offset)
                chunks.append(np.frombuffer(src.read(length), dtype=np.uint8))
            table = np.asarray(regions, dtype=np.int64).reshape(-1, 2)
            data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
            np.savez(out, size=np.int64(size), regions=table, data=data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, undo_path(path))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(path, "a copy of its metadata") from None
        raise


def restore(path: Path) -> bool:
    """Write the undo copy back and cut the file to its old length; True if there was one."""
    undo = undo_path(path)
    if not undo.exists():
        return False
    with np.load(undo) as saved:
        size, regions, data = int(saved["size"]), saved["regions"], saved["data"]
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
    undo_path(path).unlink(missing_ok=True)
