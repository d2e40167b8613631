"""Per-block CRC32 of embedding rows: how a store proves its payload is what was written.

Block k of a dataset covers rows [k*B, (k+1)*B) with B the store's `block_rows`. Its CRC32
covers the raw stored bytes of those rows (C order, stored dtype), then, for the image
side, the bytes of the matching /images/valid rows, so a flipped validity flag is caught
too. The writer stores it with the block, before /progress counts the block.
"""

from __future__ import annotations

import zlib

import h5py
import numpy as np


def block_crc(rows: np.ndarray, valid: np.ndarray | None = None) -> int:
    """CRC32 of one block's rows (already in the stored dtype) and its validity flags."""
    crc = zlib.crc32(np.ascontiguousarray(rows).tobytes())
    if valid is not None:
        crc = zlib.crc32(np.ascontiguousarray(valid, dtype=np.uint8).tobytes(), crc)
    return crc


def block_crcs(rows: np.ndarray, valid: np.ndarray | None, block_rows: int) -> np.ndarray:
    """CRC32s of consecutive blocks of `rows`, the first starting at a block boundary."""
    out = []
    for lo in range(0, rows.shape[0], block_rows):
        part = None if valid is None else valid[lo : lo + block_rows]
        out.append(block_crc(rows[lo : lo + block_rows], part))
    return np.asarray(out, dtype=np.uint32)


def n_blocks(n_rows: int, block_rows: int) -> int:
    return -(-n_rows // block_rows)


def damaged_blocks(
    f: h5py.File, dataset: str, valid: str | None, checksums: str, stop: int, block_rows: int
) -> list[int]:
    """Indices of the blocks among rows [0, stop) whose CRC32 differs from the stored one."""
    ds, sums = f[dataset], f[checksums][...]
    flags = f[valid] if valid is not None else None
    bad = []
    for k in range(n_blocks(stop, block_rows)):
        lo, hi = k * block_rows, min((k + 1) * block_rows, stop)
        part = None if flags is None else flags[lo:hi]
        if k >= sums.shape[0] or block_crc(ds[lo:hi], part) != int(sums[k]):
            bad.append(k)
    return bad
