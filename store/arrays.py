"""Reading embedding rows out of a store: contiguous slices, block by block, checked.

Rows are read READ_ROWS store rows at a time into one output array and filtered in numpy
(h5py fancy indexing with many indices is slow); a block holding only a few wanted rows is
read by point selection instead. With `check` every block read is first compared with its
stored CRC32.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mgap.core.errors import StoreError
from mgap.store import checksum
from mgap.store import schema as S
from mgap.store.metadata import DAMAGE

#: store rows read from HDF5 per block when loading embeddings (65,536 x 512 float32 = 128 MB)
READ_ROWS = 65_536


def _non_finite(path: Path, name: str) -> StoreError:
    return StoreError(
        f"{path}: rows of /{name} contain NaN or inf",
        hint="run `mgap verify` on it; re-extract, or import without those rows",
    )


def check_blocks(f: h5py.File, path: Path, name: str, stop: int, block_rows: int) -> None:
    """Fail with one line when a block of `/name` below row `stop` fails its checksum."""
    sums = S.checksum_name(name)
    if sums not in f:
        raise StoreError(
            f"{path} has no block checksums (written by mgap before schema 2)",
            hint="run without --check, or extract it again",
        )
    valid = S.IMAGE_VALID if name.startswith("images/") else None
    bad = checksum.damaged_blocks(f, name, valid, sums, stop, block_rows)
    if bad:
        raise StoreError(
            f"{path}: /{name} block {bad[0]} (rows from {bad[0] * block_rows}) fails its checksum",
            hint="the file is damaged; extract it again",
        )


#: a block holding fewer wanted rows than its rows / SPARSE_ROWS is read row by row (h5py
#: point selection: a few rows of a large store without a pass over the whole side)
SPARSE_ROWS = 64


def _copy_sparse(ds: h5py.Dataset, rows: np.ndarray, out: np.ndarray, at: int, span: int) -> None:
    """Rows `rows` (ascending, within `span` store rows) into `out[at:]`."""
    if rows.size * SPARSE_ROWS > span:
        out[at : at + rows.size] = ds[int(rows[0]) : int(rows[-1]) + 1][rows - rows[0]]
        return
    unique, inverse = np.unique(rows, return_inverse=True)
    out[at : at + rows.size] = ds[unique][inverse]


def _copy_rows(ds: h5py.Dataset, rows: np.ndarray, out: np.ndarray, path: Path, name: str) -> None:
    stop = int(rows[-1]) + 1 if rows.size else 0
    done = 0
    for lo in range(0, stop, READ_ROWS):
        hi = min(lo + READ_ROWS, stop)
        end = int(np.searchsorted(rows, hi))
        if end > done:
            first, last = int(rows[done]), int(rows[end - 1])
            if last - first == end - done - 1:  # a contiguous run: no copy
                ds.read_direct(out, np.s_[first : last + 1], np.s_[done:end])
            else:
                _copy_sparse(ds, rows[done:end], out, done, hi - lo)
            if not np.isfinite(out[done:end]).all():
                raise _non_finite(path, name)
            done = end


def read_rows(
    path: Path,
    name: str,
    rows: np.ndarray,
    dtype: np.dtype | type,
    *,
    check: bool = False,
    block_rows: int = S.BLOCK_ROWS,
) -> np.ndarray:
    """Rows `rows` (ascending) of `/name` in `dtype`: peak memory is the result plus one
    block, whatever the stored dtype."""
    stop = int(rows[-1]) + 1 if rows.size else 0
    try:
        with h5py.File(path, "r", locking=False) as f:
            ds = f[name]
            if check:
                check_blocks(f, path, name, stop, block_rows)
            out = np.empty((rows.size, ds.shape[1]), dtype=dtype)
            _copy_rows(ds, rows, out, path, name)
    except DAMAGE as exc:
        raise StoreError(
            f"{path} could not be read ({type(exc).__name__})", hint="run `mgap verify` on it"
        ) from exc
    return out
