"""Seeded matching: base selection, QAP recovery, paper baselines, the report."""

from __future__ import annotations

import numpy as np
import pytest

from mgap.engine.analysis import matching as M
from mgap.errors import UsageError


def _rotation(rng, d):
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


@pytest.fixture
def rotated(rng):
    X = rng.normal(size=(90, 16))
    return X, X @ _rotation(rng, 16)


def test_kmeans_base_takes_one_sample_per_cluster(rng):
    centres = rng.normal(size=(6, 5)) * 20
    X = np.repeat(centres, 15, axis=0) + rng.normal(size=(90, 5))
    base = M.select_base(X, 6, "kmeans", seed=0)
    assert sorted(set(base // 15)) == list(range(6))  # every cluster, no duplicates


def test_kmeans_base_is_distinct_even_when_centroids_share_a_sample(rng):
    X = np.vstack([np.zeros((1, 3)), rng.normal(size=(30, 3)) + 50])
    X = np.vstack([X, X[:1] + 1e-9])  # two near-identical points
    base = M.select_base(X, 25, "kmeans", seed=1)
    assert len(base) == 25 and len(set(base.tolist())) == 25


def test_random_base_is_seeded_and_distinct(rotated):
    X, _ = rotated
    a, b = M.select_base(X, 20, "random", 3), M.select_base(X, 20, "random", 3)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 20
    with pytest.raises(UsageError):
        M.select_base(X, 20, "greedy", 3)
    with pytest.raises(UsageError):
        M.select_base(X, 0, "random", 3)


@pytest.mark.parametrize("workers", [1, 2])
def test_qap_recovers_a_rotated_copy_exactly(rotated, workers):
    X, Y = rotated
    b = np.arange(40)
    q = np.arange(40, 90)
    result = M.qap_accuracy(X[b], Y[b], X[q], Y[q], restarts=2, seed=4, workers=workers)
    assert result["accuracy"] == 1.0 and result["restarts"] == 2


def test_parallel_and_serial_restarts_agree(rng):
    X = rng.normal(size=(40, 6))
    Y = X @ _rotation(rng, 6) + 0.8 * rng.normal(size=(40, 6))
    A, B = M._centred_kernel(X), M._centred_kernel(Y)
    serial = M.seeded_qap(A, B, 10, restarts=3, seed=9, workers=1)
    parallel = M.seeded_qap(A, B, 10, restarts=3, seed=9, workers=2)
    assert np.array_equal(serial[0], parallel[0]) and serial[1] == parallel[1]
    assert np.array_equal(serial[0][:10], np.arange(10))  # seeds stay fixed


def test_baselines(rng):
    X = rng.normal(size=(70, 8))
    A = rng.normal(size=(8, 12))
    Y = X @ A  # an exact linear map between spaces of different size
    b, q = slice(0, 40), slice(40, 70)
    assert M._scored(M.linear_map_scores(X[b], Y[b], X[q], Y[q]))["accuracy"] == 1.0
    Q = _rotation(rng, 8)
    rel = M.relative_scores(X[b], X[b] @ Q, X[q], X[q] @ Q)
    assert M._scored(rel)["accuracy"] == 1.0
    assert M._scored(M.cosine_scores(X[q], 3 * X[q]))["accuracy"] == 1.0
    assert M._scored(M.cosine_scores(X[q], Y[q]))["accuracy"] is None


def test_stretch_standardises_on_the_base(rng):
    X = rng.normal(size=(50, 4)) * [1, 10, 100, 0] + 7
    base = np.arange(20)
    S = M.stretch(X, base)
    assert np.allclose(S[base].mean(0), 0)
    assert np.allclose(S[base].std(0)[:3], 1) and np.allclose(S[:, 3], 0)


def test_report_on_stores(make_store, rotated):
    X, Y = rotated
    a, b = make_store("a.h5", X=X), make_store("b.h5", X=Y)
    doc = M.match_report(str(a), str(b), n_base=40, n_query=30, restarts=2, method="all")
    assert (doc["n_base"], doc["n_query"], doc["n"]) == (40, 30, 90)
    assert doc["accuracy"] == doc["methods"]["qap"]["accuracy"] == 1.0
    assert doc["methods"]["local-cka"]["top1"] == 1.0
    assert doc["methods"]["linear"]["accuracy"] == 1.0
    assert doc["methods"]["relative"]["accuracy"] == 1.0
    assert doc["methods"]["cosine"]["accuracy"] < 0.5  # rotated: not the same space
    assert doc["chance"] == pytest.approx(1 / 30)
    stretched = M.match_report(
        str(a), str(b), n_base=40, n_query=30, method="linear", stretch_dims=True
    )
    assert stretched["stretch"] is True and stretched["accuracy"] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"n_base": 80, "n_query": 20}, {"method": "magic"}, {"restarts": 0}, {"n_query": 1}],
)
def test_report_rejects_bad_options(make_store, rotated, kwargs):
    X, Y = rotated
    a, b = make_store("a.h5", X=X), make_store("b.h5", X=Y)
    with pytest.raises(UsageError):
        M.match_report(str(a), str(b), **kwargs)


def test_restarts_fork_only_from_a_single_threaded_process():
    import threading

    alone = threading.active_count() == 1  # earlier tests may leave threads behind
    assert M._start_method() == ("fork" if alone else "forkserver")
    seen = []
    worker = threading.Thread(target=lambda: seen.append(M._start_method()))
    worker.start()
    worker.join()
    assert seen == ["forkserver"]  # e.g. inside a TUI worker thread
