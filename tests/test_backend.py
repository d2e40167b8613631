"""The compute backend: the torch kernels (CPU here, CUDA where present) equal numpy.

References are written out in numpy float64 inside the tests; agreement is to the stated
float32 tolerance (products of unit rows in float32: about 1e-6).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.compute import backend as B
from mgap.engine.measures.retrieval import retrieval_ranks

torch = pytest.importorskip("torch")


def _engines() -> list[B.Backend]:
    return [B.resolve_backend("cpu"), B.resolve_backend("cpu", engine="torch")]


@pytest.fixture
def pairs(rng):
    X = rng.normal(size=(57, 16))
    index = np.sort(rng.integers(0, 57, 140))
    Y = X[index] + 0.9 * rng.normal(size=(140, 16))
    return X, Y, index


def test_auto_on_a_cpu_box_is_numpy_and_imports_no_torch():
    code = (
        "import sys\nfrom mgap.engine.compute.backend import resolve_backend, _nvidia_present\n"
        "b = resolve_backend('auto')\n"
        "print(b.engine, b.device, 'torch' in sys.modules, _nvidia_present())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    engine, device, loaded, nvidia = out.stdout.split()
    if nvidia == "False":
        assert (engine, device, loaded) == ("numpy", "cpu", "False")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:99", ""])
def test_bad_or_absent_devices_are_usage_errors(spec):
    if spec == "":
        assert B.resolve_backend(spec).device in ("cpu", "cuda:0")  # empty means auto
        return
    if spec == "cuda:99" or not B.cuda_available():
        with pytest.raises(UsageError):
            B.resolve_backend(spec)


def test_describe_records_device_and_precision():
    cpu = B.resolve_backend("cpu", fast=True)
    assert cpu.describe()["device"] == "cpu"
    assert cpu.describe()["precision"] == "float32"  # no faster CPU mode
    assert "note" in cpu.describe()


def test_matmul_equals_float64_product(rng):
    A, C = rng.normal(size=(33, 20)), rng.normal(size=(45, 20))
    for be in _engines():
        got = be.matmul(A, C)
        assert got.dtype == np.float64 and got.shape == (33, 45)
        assert np.allclose(got, A @ C.T, atol=1e-4)


def test_retrieval_counts_equal_between_engines(pairs):
    X, Y, index = pairs
    # many row x column tiles, and one tile holding everything
    results = [retrieval_ranks(X, Y, index, block=5, cols=7, backend=be) for be in _engines()]
    results += [
        retrieval_ranks(X, Y, index, block=len(X), cols=len(Y), backend=B.resolve_backend("cpu"))
    ]
    for (i2t_a, t2i_a), (i2t_b, t2i_b) in zip(results, results[1:], strict=False):
        for a, b in ((i2t_a, i2t_b), (t2i_a, t2i_b)):
            for field in ("above", "tied", "right_tied", "valid"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), field
    # and against the rank written out in float64: captions strictly above the own image
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    scores = Yn @ Xn.T
    own = scores[np.arange(len(Y)), index]
    want = (scores > own[:, None] + 1e-5).sum(1)
    assert np.array_equal(results[1][1].above, want)


def test_distance_sums_equal_the_written_out_table(rng):
    X = rng.normal(size=(31, 8)).astype(np.float32)
    Y = 3.0 * rng.normal(size=(44, 8)).astype(np.float32)
    X[4] = 0.0  # a zero row stays a zero vector
    gx, gy = rng.integers(-1, 3, 31), rng.integers(0, 4, 44)
    Xn = X / np.maximum(np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True), 1e-300)
    Yn = Y / np.linalg.norm(Y.astype(np.float64), axis=1, keepdims=True)
    D = np.sqrt(((Xn[:, None, :] - Yn[None, :, :]) ** 2).sum(-1))
    want = np.array([[D[gx == a][:, gy == b].sum() for b in range(4)] for a in range(3)])
    for be in _engines():
        got = be.distance_sums(X, Y, gx, gy, (3, 4), rows=7)
        assert np.allclose(got, want, rtol=1e-5)


def test_topk_equals_full_sort(rng):
    U = rng.normal(size=(80, 10))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    want = np.sort(np.argsort(-S, axis=1)[:, :6], axis=1)
    for be in _engines():
        idx, sim = be.topk(U, 6, rows=13)
        assert np.array_equal(idx, want)
        assert np.allclose(sim, np.take_along_axis(S, want, axis=1), atol=1e-6)


def test_top_k_kernel_skips_the_own_column_and_keeps_the_lower_of_ties():
    from mgap.engine.compute.tile_kernels import top_k

    S = np.array(
        [[5.0, 1.0, 3.0, 3.0, 0.0], [9.0, 8.0, 7.0, 6.0, 5.0], [0.0, 0.0, 0.0, 0.0, 1.0]],
        dtype=np.float32,
    )
    idx, vals = top_k(S, 2, np.array([0, -1, 4]))
    # row 0: own column 0 skipped, columns 2 and 3 tie at 3; row 2: all tie once 4 is skipped
    assert idx.tolist() == [[2, 3], [0, 1], [0, 1]]
    assert vals.tolist() == [[3.0, 3.0], [9.0, 8.0], [0.0, 0.0]]
    idx, _ = top_k(S, 3, np.array([2, 2, 2]))
    assert idx.tolist() == [[0, 1, 3], [0, 1, 3], [0, 1, 4]]


def test_flops_estimate_is_positive_and_cached():
    be = B.resolve_backend("cpu")
    first = be.flops_per_second()
    assert first > 0 and be.flops_per_second() == first
    assert be.estimate_seconds(2 * first) == pytest.approx(2.0)


@pytest.mark.gpu
@pytest.mark.skipif(not B.cuda_available(), reason="no CUDA device here")
def test_cuda_equals_numpy(pairs, rng):
    X, Y, index = pairs
    cpu, gpu = B.resolve_backend("cpu"), B.resolve_backend("cuda")
    a, b = retrieval_ranks(X, Y, index, backend=cpu), retrieval_ranks(X, Y, index, backend=gpu)
    for ra, rb in zip(a, b, strict=True):
        assert np.array_equal(ra.above, rb.above) and np.array_equal(ra.tied, rb.tied)
    U = rng.normal(size=(300, 32))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    assert np.array_equal(cpu.topk(U, 7)[0], gpu.topk(U, 7)[0])
    assert np.allclose(cpu.matmul(U, U), gpu.matmul(U, U), atol=1e-5)


def test_fused_counts_equal_written_out_comparisons(rng):
    S = rng.normal(size=(37, 53)).astype(np.float32)
    col_low, col_high = S[5].copy(), S[5] + np.float32(1e-3)  # row 5 sits on the low edge
    row_low, row_high = S[:, 8] - np.float32(1e-3), S[:, 8].copy()  # column 8 on the high edge
    counts = B.resolve_backend("cpu").count_block(S, col_low, col_high, row_low, row_high)
    want = (
        (col_high < S).sum(0),
        (col_low <= S).sum(0),
        (row_high[:, None] < S).sum(1),
        (row_low[:, None] <= S).sum(1),
    )
    for got, expected in zip(counts, want, strict=True):
        assert got.dtype == np.int64 and np.array_equal(got, expected)
    above, atleast = B.resolve_backend("cpu").count_rows(S, row_low, row_high)
    assert np.array_equal(above, want[2]) and np.array_equal(atleast, want[3])
