"""CKA estimators against plain n x n implementations, invariances and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.measures import cka
from mgap.engine.studies.cka import cka_report


# ---- plain references (explicit centring matrix, dense kernels) -----------------------------
def _hsic_h(K, L):
    n = K.shape[0]
    H = np.eye(n) - 1.0 / n
    return np.trace(K @ H @ L @ H)


def _hsic_song(K, L):
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    value = (
        np.sum(Kt * Lt.T)
        + Kt.sum() * Lt.sum() / ((n - 1) * (n - 2))
        - 2 * np.sum(Kt @ Lt) / (n - 2)
    )
    return value / (n * (n - 3))


def _cka_ref(K, L, hsic=_hsic_h):
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _rbf_ref(X, sigma=None):
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    if sigma is None:
        sigma = np.sqrt(np.median(D[D != 0]))
    return np.exp(-D / (2 * sigma**2))


def _rotation(rng, d):
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


@pytest.fixture
def pair(rng):
    X = rng.normal(size=(60, 8))
    Y = np.tanh(X @ rng.normal(size=(8, 5))) + 0.3 * rng.normal(size=(60, 5))
    return X, Y


def test_linear_matches_explicit_centring_matrix(pair):
    X, Y = pair  # float32 products, float64 sums: agreement far inside the 1e-6 contract
    assert cka.linear_cka(X, Y) == pytest.approx(_cka_ref(X @ X.T, Y @ Y.T), abs=1e-7)


def test_linear_wide_data_uses_grams_with_same_value(rng):
    X, Y = rng.normal(size=(10, 40)), rng.normal(size=(10, 30))
    assert cka.linear_cka(X, Y) == pytest.approx(_cka_ref(X @ X.T, Y @ Y.T), abs=1e-7)


def test_linear_float32_products_agree_with_float64_at_scale(rng):
    X = rng.normal(size=(3000, 300)) * rng.uniform(0.01, 10, size=300)
    Y = X @ rng.normal(size=(300, 200)) + 5 * rng.normal(size=(3000, 200)) + 100.0
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    exact = np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert cka.linear_cka(X, Y) == pytest.approx(exact, abs=1e-7)


def test_unbiased_matches_song_formula(pair):
    X, Y = pair
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    want = _cka_ref(Xc @ Xc.T, Yc @ Yc.T, _hsic_song)
    assert cka.unbiased_cka(X, Y) == pytest.approx(want, abs=1e-12)
    # the U-statistic ignores a common shift, so the uncentred kernels agree as well
    assert cka.unbiased_cka(X, Y) == pytest.approx(_cka_ref(X @ X.T, Y @ Y.T, _hsic_song))


@pytest.mark.parametrize("unbiased", [False, True])
def test_rbf_matches_dense_reference(pair, unbiased):
    X, Y = pair
    hsic = _hsic_song if unbiased else _hsic_h
    want = _cka_ref(_rbf_ref(X), _rbf_ref(Y), hsic)
    assert cka.rbf_cka(X, Y, unbiased=unbiased) == pytest.approx(want, abs=1e-12)
    fixed = _cka_ref(_rbf_ref(X, 2.0), _rbf_ref(Y, 2.0), hsic)
    assert cka.rbf_cka(X, Y, sigma=2.0, unbiased=unbiased) == pytest.approx(fixed, abs=1e-12)


@pytest.mark.parametrize(
    "fn,tol",
    [
        (cka.linear_cka, 1e-7),  # float32 products (see linear_cka)
        (cka.unbiased_cka, 1e-10),
        (cka.rbf_cka, 1e-10),
        (lambda X, Y: cka.rbf_cka(X, Y, unbiased=True), 1e-10),
    ],
)
def test_invariances_and_self_similarity(pair, rng, fn, tol):
    X, Y = pair
    base = fn(X, Y)
    assert fn(X, X) == pytest.approx(1.0, abs=tol)
    assert fn(X @ _rotation(rng, 8), Y) == pytest.approx(base, abs=tol)
    assert fn(3.7 * X, Y) == pytest.approx(base, abs=tol)
    assert fn(X + rng.normal(size=8) * 10, Y - 4.0) == pytest.approx(base, abs=tol)


def test_independent_features_biased_near_d_over_n_plus_d_and_unbiased_near_zero():
    n, d = 400, 100
    biased, unbiased = [], []
    for seed in range(5):
        r = np.random.default_rng(seed)
        X, Y = r.normal(size=(n, d)), r.normal(size=(n, d))
        biased.append(cka.linear_cka(X, Y))
        unbiased.append(cka.unbiased_cka(X, Y))
    assert np.mean(biased) == pytest.approx(d / (n + d), rel=0.03)
    assert abs(np.mean(unbiased)) < 0.005


def test_pairing_baseline_is_the_mean_over_random_pairings(rng):
    X = rng.normal(size=(50, 6)) * np.arange(1, 7)  # anisotropic
    Y = rng.normal(size=(50, 4))
    draws = [cka.linear_cka(X, Y[rng.permutation(50)]) for _ in range(3000)]
    assert cka.pairing_baseline(X, Y) == pytest.approx(np.mean(draws), rel=0.03)
    Z = np.random.default_rng(1).normal(size=(2000, 50))
    assert cka.pairing_baseline(Z, Z) == pytest.approx(50 / 2050, rel=0.05)


@pytest.mark.parametrize("threads_from", [10_000, 16])
def test_threaded_distances_and_exact_median(rng, monkeypatch, threads_from):
    monkeypatch.setattr(cka, "PARALLEL_ROWS", threads_from)
    X = rng.normal(size=(700, 5))
    X[100:150] = X[0]  # duplicates: zero distances off the diagonal, and ties
    D = cka.squared_distances(X)
    want = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    assert np.allclose(D, want, atol=1e-10) and not np.diagonal(D).any()
    assert D.size > 4 * cka.MEDIAN_SAMPLE  # the bracketing path, not the small-input one
    assert cka.median_sigma(D) == np.sqrt(np.median(D[D != 0]))
    drop = rng.random(D.shape) < 0.6
    skewed = np.where(drop | drop.T, 0.0, D)  # symmetric, mostly zeros
    assert cka.median_sigma(skewed) == np.sqrt(np.median(skewed[skewed != 0]))


def test_minibatch_single_batch_equals_full_unbiased(pair):
    X, Y = pair
    assert cka.minibatch_cka(X, Y, batch_size=100) == pytest.approx(cka.unbiased_cka(X, Y))
    both = cka.minibatch_cka(X, Y, batch_size=100, kernel="rbf")
    assert both == pytest.approx(cka.rbf_cka(X, Y, unbiased=True))


def test_minibatch_close_to_full_on_large_n(rng):
    X = rng.normal(size=(3000, 10))
    Y = X @ rng.normal(size=(10, 10)) + rng.normal(size=(3000, 10))
    full = cka.unbiased_cka(X, Y)
    assert cka.minibatch_cka(X, Y, batch_size=500, seed=3) == pytest.approx(full, abs=0.02)


def test_bad_arguments_raise_usage_errors(pair):
    X, Y = pair
    with pytest.raises(UsageError):
        cka.linear_cka(X, Y[:10])
    with pytest.raises(UsageError):
        cka.minibatch_cka(X, Y, batch_size=2)
    with pytest.raises(UsageError):
        cka.minibatch_cka(X, Y, batch_size=10, kernel="cosine")
    with pytest.raises(UsageError):
        cka.rbf_cka(np.ones((5, 3)), np.ones((5, 3)))  # all distances zero


def _stores(make_store, rng):
    X = rng.normal(size=(40, 6))
    Y = X @ rng.normal(size=(6, 6)) + 0.5 * rng.normal(size=(40, 6))  # one shared space
    return make_store("two.h5", X=X, Y=Y), make_store("img.h5", X=rng.normal(size=(40, 3))), X, Y


def test_report_matrix_on_stores(make_store, rng):
    two, img, X, Y = _stores(make_store, rng)
    refs = [f"{two}:image", f"{two}:text", str(img)]
    doc = cka_report(refs).to_json()
    assert doc["names"] == ["two.h5:image", "two.h5:text", "img.h5:image"]
    assert (doc["n"], doc["dims"], doc["estimator"], doc["kernel"]) == (
        40,
        [6, 6, 3],
        "biased",
        "linear",
    )
    M = np.asarray(doc["matrix"])
    assert np.allclose(np.diag(M), 1) and np.allclose(M, M.T)
    Yu = Y / np.linalg.norm(Y, axis=1, keepdims=True)  # one caption per image, normalised
    assert M[0, 1] == pytest.approx(cka.linear_cka(X, Yu), abs=1e-6)
    assert np.asarray(doc["chance"])[0, 1] == pytest.approx(cka.pairing_baseline(X, Yu), abs=1e-6)
    rbf = cka_report(refs[:2], kernel="rbf", unbiased=True).to_json()
    assert rbf["estimator"] == "unbiased" and len(rbf["sigma"]) == 2
    assert rbf["matrix"][0][1] == pytest.approx(cka.rbf_cka(X, Yu, unbiased=True), abs=1e-6)


def test_report_never_switches_estimator_and_rbf_is_exact_blocked(make_store, rng, monkeypatch):
    from mgap.engine.compute import backend as backend_module
    from mgap.engine.measures import rbf_blocked

    X = rng.standard_normal((60, 6))
    Y = np.tanh(X @ rng.standard_normal((6, 6))) + 0.3 * rng.standard_normal((60, 6))
    two = make_store("same_dim.h5", X=X, Y=Y)
    refs = [f"{two}:image", f"{two}:text"]
    want = cka_report(refs, kernel="rbf").to_json()
    Yu = Y / np.linalg.norm(Y, axis=1, keepdims=True)  # the text side of a REF is normalised
    assert want["matrix"][0][1] == pytest.approx(cka.rbf_cka(X, Yu), abs=1e-5)
    monkeypatch.setattr(backend_module, "CPU_BLOCK_CELLS", 97)  # many row blocks
    monkeypatch.setattr(rbf_blocked, "CACHE_BYTES", 0)  # recompute blocks between passes
    monkeypatch.setattr(rbf_blocked, "WINDOW_VALUES", 10)  # histogram pass narrows the bracket
    monkeypatch.setattr(rbf_blocked, "BRACKET_ROWS", 30)
    doc = cka_report(refs, kernel="rbf").to_json()
    assert doc["estimator"] == "biased" and "batch_size" not in doc
    assert doc["matrix"][0][1] == pytest.approx(want["matrix"][0][1], abs=1e-6)
    assert doc["sigma"] == pytest.approx(want["sigma"], rel=1e-6)
    unbiased = cka_report(refs, kernel="rbf", unbiased=True).to_json()
    assert unbiased["matrix"][0][1] == pytest.approx(cka.rbf_cka(X, Yu, unbiased=True), abs=1e-5)
    explicit = cka_report(refs, batch_size=16).to_json()
    assert explicit["estimator"] == "minibatch-unbiased" and explicit["batch_size"] == 16


@pytest.mark.parametrize("kwargs", [{"kernel": "poly"}, {"sigma": -1.0}, {"batch_size": 3}])
def test_report_rejects_bad_options(make_store, rng, kwargs):
    two, _, _, _ = _stores(make_store, rng)
    with pytest.raises(UsageError):
        cka_report([f"{two}:image", f"{two}:text"], **kwargs)
    with pytest.raises(UsageError):
        cka_report([str(two)])
