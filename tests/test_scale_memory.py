"""Bounded memory: stores are read block by block in float32, gap sums are float64 per block,
and the results equal the whole-array float64 formulas."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mgap.engine.measures.gap import gap_metrics, gap_sums
from mgap.engine.measures.rows import unit_rows_
from mgap.store import arrays as store_arrays
from mgap.store import open_store
from mgap.store import schema as S


def test_blocked_read_equals_whole_read_with_invalid_rows(make_store, rng, monkeypatch):
    X = rng.standard_normal((23, 5))
    Y = rng.standard_normal((23, 5))
    path = make_store(X=X, Y=Y, dtype="float16")
    with h5py.File(path, "a") as f:  # two images never embedded (skipped)
        valid = f[S.IMAGE_VALID][...]
        valid[[4, 17]] = False
        f[S.IMAGE_VALID][...] = valid
    monkeypatch.setattr(store_arrays, "READ_ROWS", 3)
    store = open_store(path)
    got = store.image_embeddings(np.float32)
    with h5py.File(path, "r") as f:
        want = f[S.IMAGE_EMB][...][store.image_rows].astype(np.float32)
    assert got.dtype == np.float32 and got.shape == (21, 5)
    assert np.array_equal(got, want)
    assert np.array_equal(store.text_embeddings(np.float32)[:3], Y[:3].astype(np.float16))


def test_gap_on_float32_input_equals_the_float64_formula(rng, monkeypatch):
    from mgap.engine.measures import gap as gap_module

    monkeypatch.setattr(gap_module, "BLOCK", 7)  # many blocks
    X = rng.standard_normal((40, 6)).astype(np.float32) + 1.0
    index = np.repeat(np.arange(40), 2)
    Y = (X[index] + rng.standard_normal((80, 6))).astype(np.float32)
    got = gap_metrics(X, Y, index)
    Xn = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    Yn = Y.astype(np.float64) / np.linalg.norm(Y.astype(np.float64), axis=1, keepdims=True)
    assert got["l2m"] == pytest.approx(np.linalg.norm(Xn.mean(0) - Yn.mean(0)), abs=1e-12)
    assert got["l2i"] == pytest.approx(np.linalg.norm(Xn[index] - Yn, axis=1).mean(), abs=1e-12)
    groups = np.arange(40) % 3
    sums = gap_sums(X, Y, index, groups, 3)
    member = groups[index] == 2
    assert sums.n_y[2] == member.sum()
    assert sums.cos[2] == pytest.approx((Xn[index][member] * Yn[member]).sum(), abs=1e-10)


def test_in_place_normalisation_keeps_zero_rows(rng):
    A = rng.standard_normal((9, 4)).astype(np.float32)
    A[3] = 0.0
    out = unit_rows_(A)
    assert out is A and A.dtype == np.float32
    assert np.allclose(np.linalg.norm(np.delete(A, 3, axis=0), axis=1), 1.0, atol=1e-6)
    assert not A[3].any()
