"""Permutation nulls of CKA and k-NN alignment: re-indexed Grams and graphs equal the score
recomputed from scratch on shuffled rows; p-values are uniform under exchangeable data and
at the 1/(N+1) floor for a REF against itself; `mgap cka/knn --permutations`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from mgap.engine.measures.permutation import (
    GramNull,
    linear_gram,
    mutual_overlap,
    permutation_null,
    permuted_inner,
    permuted_neighbours,
)
from mgap.store.build import store_from_arrays


def written_linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    cross = np.linalg.norm(Xc.T @ Yc, "fro") ** 2
    return cross / (np.linalg.norm(Xc.T @ Xc, "fro") * np.linalg.norm(Yc.T @ Yc, "fro"))


def written_unbiased_hsic(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, with the diagonals zeroed."""
    n = K.shape[0]
    K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (
        np.trace(K @ L)
        + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ K @ L @ one)
    ) / (n * (n - 3))


def written_rbf(X: np.ndarray, sigma: float) -> np.ndarray:
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-d2 / (2 * sigma**2))


def written_knn(X: np.ndarray, k: int) -> np.ndarray:
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    return np.sort(np.argsort(-S, axis=1, kind="stable")[:, :k], axis=1)


@pytest.fixture
def pair(rng):
    Z = rng.normal(size=(40, 6))
    return Z @ rng.normal(size=(6, 7)), Z @ rng.normal(size=(6, 5)) + 0.5 * rng.normal(size=(40, 5))


def test_a_reindexed_linear_gram_is_cka_of_the_shuffled_rows(pair, rng):
    X, Y = pair
    null = GramNull(linear_gram(X), linear_gram(Y))
    assert null.cka() == pytest.approx(written_linear_cka(X, Y), rel=1e-10)
    for _ in range(3):
        p = rng.permutation(X.shape[0])
        assert null.cka(p) == pytest.approx(written_linear_cka(X, Y[p]), rel=1e-10)


def test_a_reindexed_unbiased_gram_is_unbiased_cka_of_the_shuffled_rows(pair, rng):
    X, Y = pair
    K, L = X @ X.T, Y @ Y.T
    null = GramNull(K, L, unbiased=True)
    p = rng.permutation(X.shape[0])
    Lp = Y[p] @ Y[p].T
    expected = written_unbiased_hsic(K, Lp) / np.sqrt(
        written_unbiased_hsic(K, K) * written_unbiased_hsic(Lp, Lp)
    )
    assert null.cka(p) == pytest.approx(expected, rel=1e-10)


def test_a_reindexed_rbf_gram_is_rbf_cka_of_the_shuffled_rows(pair, rng):
    X, Y = pair
    H = np.eye(40) - 1 / 40
    p = rng.permutation(40)
    K, Lp = written_rbf(X, 2.0), written_rbf(Y[p], 1.5)
    expected = np.trace(K @ H @ Lp @ H) / np.sqrt(
        np.trace(K @ H @ K @ H) * np.trace(Lp @ H @ Lp @ H)
    )
    null = GramNull(written_rbf(X, 2.0), written_rbf(Y, 1.5))
    assert null.cka(p) == pytest.approx(expected, rel=1e-10)


def test_reindexed_neighbour_lists_are_those_of_the_shuffled_rows(pair, rng):
    X, Y = pair
    p = rng.permutation(40)
    shuffled = permuted_neighbours(written_knn(Y, 5), p)
    np.testing.assert_array_equal(np.sort(shuffled, axis=1), written_knn(Y[p], 5))
    ia, ib = written_knn(X, 5), written_knn(Y[p], 5)
    brute = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ia, ib, strict=True)])
    assert mutual_overlap(ia, shuffled) == pytest.approx(brute)


def test_p_values_are_uniform_when_rows_are_exchangeable():
    """Independent X and Y: (1 + #{null ≥ observed}) / (1 + N) over seeds is U(0, 1)."""
    pvalues = []
    for seed in range(150):
        rng = np.random.default_rng(500 + seed)
        X, Y = rng.normal(size=(25, 3)), rng.normal(size=(25, 3))
        null = GramNull(linear_gram(X), linear_gram(Y))
        pvalues.append(permutation_null(null.cka, 25, 99, seed)["p_value"])
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01


def test_a_ref_against_itself_is_at_the_floor(pair):
    X, _ = pair
    null = GramNull(linear_gram(X), linear_gram(X))
    out = permutation_null(null.cka, 40, 199, 0)
    assert out["observed"] == pytest.approx(1.0)
    assert out["p_value"] == pytest.approx(1 / 200)
    assert out["excess"] == pytest.approx(1.0 - out["mean"])
    assert out["mean"] < 0.9


def _stores(tmp_path, rng):
    Z = rng.normal(size=(60, 4))
    paths = []
    for name in ("a", "b"):
        X = Z @ rng.normal(size=(4, 8)) + 0.3 * rng.normal(size=(60, 8))
        Y = rng.normal(size=(60, 8))
        path = tmp_path / f"{name}.h5"
        store_from_arrays(path, image_embeddings=X, text_embeddings=Y)
        paths.append(str(path))
    return paths


def test_cka_and_knn_permutations_on_the_command_line(tmp_path, cli, rng):
    a, b = _stores(tmp_path, rng)
    plain = json.loads(cli("cka", a, b, "--json").stdout)
    assert "null" not in plain
    doc = json.loads(cli("cka", a, b, "--permutations", "99", "--seed", "3", "--json").stdout)
    (entry,) = doc["null"]["pairs"]
    assert entry["observed"] == pytest.approx(doc["matrix"][0][1], rel=1e-6)
    assert entry["p_value"] == pytest.approx(1 / 100)
    assert {k: v for k, v in doc.items() if k != "null"} == plain
    self_doc = json.loads(cli("cka", a, a, "--permutations", "49", "--json").stdout)
    assert self_doc["null"]["pairs"][0]["p_value"] == pytest.approx(1 / 50)
    knn = json.loads(cli("knn", a, b, "--k", "5", "--permutations", "49", "--json").stdout)
    assert knn["null"]["mutual_knn"]["observed"] == pytest.approx(knn["mutual_knn"])
    assert knn["null"]["cknna"]["observed"] == pytest.approx(knn["cknna"])
    sampled = json.loads(
        cli("knn", a, b, "--k", "5", "--sample", "30", "--permutations", "19", "--json").stdout
    )
    assert sampled["null"]["mutual_knn"]["observed"] == pytest.approx(sampled["mutual_knn"])
    assert sampled["null"]["cknna"] is None
    text = cli("cka", a, b, "--permutations", "19")
    assert text.returncode == 0 and "permutation null" in text.stdout


def test_minibatch_cka_with_permutations_is_refused_in_one_line(tmp_path, cli, rng):
    a, b = _stores(tmp_path, rng)
    done = cli("cka", a, b, "--batch-size", "20", "--permutations", "9")
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "--batch-size" in done.stderr


def test_the_fused_reindex_is_the_written_out_sum(rng):
    K, L = rng.standard_normal((301, 301)), rng.standard_normal((301, 301))
    p = rng.permutation(301)
    expected = sum(K[i, j] * L[p[i], p[j]] for i in range(301) for j in range(301))
    assert permuted_inner(K, L, p) == pytest.approx(expected, rel=1e-12)
    assert permuted_inner(K[:, ::-1], L.T, p) == pytest.approx(np.sum(K[:, ::-1] * L.T[p][:, p]))
