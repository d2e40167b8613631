"""Unit rows: written-out norms, zero rows, dtypes, in place."""

from __future__ import annotations

import numpy as np

from mgap.engine.measures.rows import unit_rows, unit_rows_


def test_unit_rows_divide_by_the_euclidean_norm():
    X = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    U = unit_rows(X)
    assert np.allclose(U, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]])
    assert U.dtype == np.float64 and not np.shares_memory(U, X)


def test_float32_rows_keep_their_dtype_and_match_float64():
    X = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    U = unit_rows(X, np.float32)
    assert U.dtype == np.float32
    ref = X.astype(np.float64) / np.sqrt((X.astype(np.float64) ** 2).sum(1, keepdims=True))
    assert np.abs(U - ref).max() < 1e-6


def test_in_place_rows_are_the_same_array():
    X = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    X[4] = 0
    expect = unit_rows(X, np.float32)
    out = unit_rows_(X)
    assert out is X and np.allclose(X, expect) and not X[4].any()
