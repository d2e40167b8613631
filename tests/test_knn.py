"""Mutual k-NN and CKNNA against the dense formulation of Huh et al. (full sort, n x n masks)."""

from __future__ import annotations

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.measures import knn
from mgap.engine.studies.knn import knn_report


def _dense_knn(X, k):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    return S, np.argsort(-S, axis=1)[:, :k]


def _dense_mutual(X, Y, k):
    _, a = _dense_knn(X, k)
    _, b = _dense_knn(Y, k)
    return np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(X))])


def _hsic_unbiased(K, L):
    m = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    value = (
        np.sum(Kt * Lt.T)
        + np.sum(Kt) * np.sum(Lt) / ((m - 1) * (m - 2))
        - 2 * np.sum(Kt @ Lt) / (m - 2)
    )
    return value / (m * (m - 3))


def _dense_cknna(X, Y, k):
    """The platonic-rep reference: masks from top-k rows, unbiased HSIC of masked kernels."""
    n = len(X)
    (K, ka), (L, lb) = _dense_knn(X, k), _dense_knn(Y, k)
    np.fill_diagonal(K, 1.0)
    np.fill_diagonal(L, 1.0)

    def mask(idx):
        M = np.zeros((n, n))
        np.put_along_axis(M, idx, 1.0, axis=1)
        return M

    MK, ML = mask(ka), mask(lb)

    def sim(A, B, M):
        return _hsic_unbiased(M * A, M * B)

    return sim(K, L, MK * ML) / np.sqrt(sim(K, K, MK) * sim(L, L, ML))


@pytest.fixture
def related(rng):
    X = rng.normal(size=(120, 12))
    Y = np.tanh(X @ rng.normal(size=(12, 7))) + 0.4 * rng.normal(size=(120, 7))
    return X, Y


def test_knn_graph_blocks_equal_dense(related):
    X, _ = related
    S, want = _dense_knn(X, 6)
    idx, sim = knn.knn_graph(X, 6, block=17)
    assert np.array_equal(idx, np.sort(want, axis=1))
    assert np.allclose(sim, np.take_along_axis(S, idx, axis=1))
    assert not (idx == np.arange(len(X))[:, None]).any()


@pytest.mark.parametrize("k", [2, 5, 10])
def test_mutual_and_cknna_equal_dense_reference(related, k):
    X, Y = related
    assert knn.mutual_knn(X, Y, k) == pytest.approx(_dense_mutual(X, Y, k), abs=1e-12)
    # similarities are float32 products on the backend: the stated tolerance is 1e-6
    assert knn.cknna(X, Y, k) == pytest.approx(_dense_cknna(X, Y, k), abs=1e-6)


def test_identical_and_similar_spaces_score_one(related, rng):
    X, _ = related
    Q = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    assert knn.mutual_knn(X, X, 10) == 1.0
    assert knn.mutual_knn(X, 2.5 * X @ Q, 10) == pytest.approx(1.0)
    assert knn.cknna(X, X, 10) == pytest.approx(1.0)


def test_chance_level_for_independent_spaces():
    n, k = 1000, 10
    r = np.random.default_rng(5)
    values = [knn.mutual_knn(r.normal(size=(n, 8)), r.normal(size=(n, 8)), k) for _ in range(3)]
    assert np.mean(values) == pytest.approx(k / (n - 1), rel=0.15)


def test_bad_k_is_a_usage_error(related):
    X, Y = related
    for k in (0, len(X)):
        with pytest.raises(UsageError):
            knn.mutual_knn(X, Y, k)
    with pytest.raises(UsageError):
        knn.cknna(X, Y, 1)


def test_report_on_stores(make_store, related):
    X, Y = related
    a, b = make_store("a.h5", X=X), make_store("b.h5", X=Y)
    doc = knn_report(str(a), str(b), k=5).to_json()
    assert (doc["k"], doc["n"]) == (5, 120)
    assert doc["chance"] == pytest.approx(5 / 119)
    assert doc["mutual_knn"] == pytest.approx(_dense_mutual(X, Y, 5), abs=1e-6)
    assert doc["cknna"] == pytest.approx(_dense_cknna(X, Y, 5), abs=1e-5)
