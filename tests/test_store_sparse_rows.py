"""A few scattered rows of a large side are read by point selection (no pass over the
whole block); the rows must equal those of a full read, duplicates and dtypes included."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mgap.store import arrays, open_store


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scattered_rows_equal_a_full_read(make_store, monkeypatch, dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    index = np.arange(3000)
    path = make_store(X=X, Y=X + 1, caption_image_row=index)
    store = open_store(path)
    with h5py.File(path, "r") as f:
        full = f["images/embeddings"][...]
    sparse = np.array([5, 5, 6, 17, 1800, 2999])  # 6 * SPARSE_ROWS < 3000: point selection
    dense = np.arange(0, 3000, 7)  # 429 rows: the whole block, filtered
    reads = []
    real = arrays._copy_sparse

    def spy(ds, rows, out, at, span):
        reads.append(rows.size * arrays.SPARSE_ROWS <= span)
        real(ds, rows, out, at, span)

    monkeypatch.setattr(arrays, "_copy_sparse", spy)
    for rows, pointwise in ((sparse, True), (dense, False)):
        got = store.embedding_subset("image", rows, dtype)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, full[rows].astype(dtype))
        assert reads.pop() is pointwise
