"""`mgap cka --sample N`: an unbiased finite-population HSIC estimate and a subsampling
interval that covers the exact all-rows CKA at about the stated rate (20 seeds)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mgap.engine.measures.cka_sample import population_hsic
from mgap.engine.studies.cka import cka_report


# ---- references written here (explicit centring matrix, Song et al.'s formula) -----------
def _biased_hsic(K, L):
    n = K.shape[0]
    H = np.eye(n) - 1.0 / n
    return np.trace(K @ H @ L @ H) / n**2


def _song_hsic(K, L):
    n = K.shape[0]
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    value = (
        np.trace(Kt @ Lt)
        + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * one @ Kt @ Lt @ one
    )
    return value / (n * (n - 3))


def _estimate(K, L, rows, n, unbiased=False):
    ks, ls = K[np.ix_(rows, rows)], L[np.ix_(rows, rows)]
    return population_hsic(
        float((ks * ls).sum()),
        ks.sum(1),
        ls.sum(1),
        np.diag(ks).copy(),
        np.diag(ls).copy(),
        n,
        unbiased=unbiased,
    )


@pytest.fixture
def kernels(rng):
    """A linear and an RBF kernel on 9 rows with a large mean (no centring helps)."""
    X = rng.standard_normal((9, 3)) + 4.0
    Y = np.tanh(X @ rng.standard_normal((3, 2))) + 0.5 * rng.standard_normal((9, 2))
    D = ((Y[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
    return X @ X.T, np.exp(-D / 2.0), X


def test_estimate_is_unbiased_over_every_subsample(kernels):
    K, L, _ = kernels
    n, m = 9, 5
    subsets = [list(s) for s in itertools.combinations(range(n), m)]  # all 126, equally likely
    for A, B in ((K, L), (K, K), (L, L)):
        mean = np.mean([_estimate(A, B, s, n) for s in subsets])
        assert mean == pytest.approx(_biased_hsic(A, B), rel=1e-10)
        mean_u = np.mean([_estimate(A, B, s, n, unbiased=True) for s in subsets])
        assert mean_u == pytest.approx(_song_hsic(A, B), rel=1e-10)
    # the sample's own biased HSIC is not unbiased for the all-n value: the correction matters
    naive = np.mean([_biased_hsic(K[np.ix_(s, s)], L[np.ix_(s, s)]) for s in subsets])
    assert abs(naive - _biased_hsic(K, L)) > 0.05 * abs(_biased_hsic(K, L))


def test_estimate_limits_and_shift_invariance(kernels):
    K, L, X = kernels
    rows = [0, 2, 3, 5, 7, 8]
    sub = np.ix_(rows, rows)
    # n = m: the sample's own biased HSIC; n -> infinity: Song et al.'s unbiased HSIC
    assert _estimate(K, L, rows, 6) == pytest.approx(_biased_hsic(K[sub], L[sub]), rel=1e-10)
    assert _estimate(K, L, rows, 10**9) == pytest.approx(_song_hsic(K[sub], L[sub]), rel=1e-6)
    shifted = (X - 7.0) @ (X - 7.0).T  # the same centred kernel
    assert _estimate(shifted, L, rows, 9) == pytest.approx(_estimate(K, L, rows, 9), rel=1e-9)


@pytest.fixture
def moderate_store(make_store):
    """3,000 images, d = 96, text tied to the image through 8 shared factors: exact CKA near
    0.5, and at 500 sampled rows the sample's own biased CKA is visibly inflated."""
    rng = np.random.default_rng(11)
    n, d = 3000, 96
    Z = rng.standard_normal((n, 8))
    X = Z @ rng.standard_normal((8, d)) + 2.5 * rng.standard_normal((n, d)) + 1.0
    Y = np.tanh(Z @ rng.standard_normal((8, d))) + 1.2 * rng.standard_normal((n, d)) - 2.0
    path = make_store("moderate.h5", X=X, Y=Y)
    return [f"{path}:image", f"{path}:text"]


def _sample_cka(X, Y, kernel):
    """The sample's own biased CKA (what a naive estimate or a bootstrap centres on)."""
    K, L = (A @ A.T if kernel == "linear" else _rbf(A) for A in (X, Y))
    Kc, Lc = (A - A.mean(0) - A.mean(1)[:, None] + A.mean() for A in (K, L))  # H K H
    return (Kc * Lc).sum() / np.sqrt((Kc * Kc).sum() * (Lc * Lc).sum())


def _rbf(A):
    sq = (A * A).sum(1)
    D = np.maximum(sq[:, None] + sq[None, :] - 2.0 * A @ A.T, 0.0)
    np.fill_diagonal(D, 0.0)
    return np.exp(-D / (2.0 * np.median(D[np.triu_indices(len(A), 1)])))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_sampled_intervals_cover_the_exact_cka(moderate_store, kernel):
    from mgap.engine.studies.refs import align_refs

    _, (X, Y), _ = align_refs(moderate_store)
    exact_doc = cka_report(moderate_store, kernel=kernel).to_json()
    assert exact_doc["estimate"] == {"mode": "exact", "n": 3000}
    exact = exact_doc["matrix"][0][1]
    assert 0.2 < exact < 0.8
    hits = naive_hits = 0
    for seed in range(20):
        doc = cka_report(moderate_store, kernel=kernel, sample=500, seed=seed).to_json()
        est = doc["estimate"]
        assert est["mode"] == "sampled" and est["n"] == 500 and est["seed"] == seed
        assert est["interval_level"] == 0.95 and "disjoint subsamples" in est["interval_method"]
        assert doc["n"] == 3000 and doc["estimator"] == "biased"
        low, high = est["interval"]["matrix"][0][1]
        assert low < doc["matrix"][0][1] < high and est["interval"]["matrix"][1][0] == [low, high]
        hits += low <= exact <= high
        rows = np.sort(np.random.default_rng(seed).permutation(3000)[:500])
        naive = _sample_cka(X[rows], Y[rows], kernel)
        naive_hits += abs(naive - exact) <= (high - low) / 2
    assert hits >= 17  # nominal 95 % of 20 (P(hits < 17) < 2 % at the nominal rate)
    assert naive_hits <= 12  # the uncorrected sample CKA with the same width would miss


@pytest.mark.slow
def test_sampled_unbiased_cka_covers_the_exact_unbiased_value(moderate_store):
    exact = cka_report(moderate_store, unbiased=True).to_json()["matrix"][0][1]
    assert exact < cka_report(moderate_store).to_json()["matrix"][0][1]  # a different target
    hits = 0
    for seed in range(20):
        doc = cka_report(moderate_store, unbiased=True, sample=500, seed=seed).to_json()
        assert (
            doc["estimator"] == "unbiased"
            and "all-n unbiased HSIC" in doc["estimate"]["interval_method"]
        )
        low, high = doc["estimate"]["interval"]["matrix"][0][1]
        hits += low <= exact <= high
    assert hits >= 17


def test_sampling_is_seeded_and_all_rows_is_exact(moderate_store):
    a, b = (cka_report(moderate_store, sample=300, seed=5).to_json() for _ in range(2))
    assert a["matrix"] == b["matrix"] and a["estimate"] == b["estimate"]
    assert cka_report(moderate_store, sample=300, seed=6).to_json()["matrix"] != a["matrix"]
    full = cka_report(moderate_store, sample=10**6).to_json()
    assert full["estimate"] == {"mode": "exact", "n": 3000}
    assert full["matrix"] == cka_report(moderate_store).to_json()["matrix"]


def test_cli_cka_sample_on_real_convirt(cli, convirt_dir, tmp_path):
    store = tmp_path / "convirt.h5"
    made = cli("import", str(convirt_dir / "features_convirt.npy"), "--out", str(store))
    assert made.returncode == 0, made.stderr
    refs = [f"{store}:image", f"{store}:text"]
    for kernel in ("linear", "rbf"):
        exact = cka_report(refs, kernel=kernel).to_json()
        assert exact["estimate"] == {"mode": "exact", "n": 500}
        done = cli("cka", *refs, "--kernel", kernel, "--sample", "250", "--seed", "3", "--json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        est = doc["estimate"]
        assert (est["mode"], est["n"], est["seed"], est["groups"]) == ("sampled", 250, 3, 10)
        low, high = est["interval"]["matrix"][0][1]
        assert low <= exact["matrix"][0][1] <= high and high - low < 0.3
        assert doc["compute"]["device"] == "cpu" and doc["n"] == 500
    people = cli("cka", *refs, "--sample", "250")
    assert people.returncode == 0 and "95% intervals" in people.stdout
    assert "estimated from 250 sampled rows" in " ".join(people.stdout.split())
    for args, words in (
        (["--sample", "50"], "at least 100"),
        (["--sample", "200", "--batch-size", "64"], "two different estimators"),
    ):
        bad = cli("cka", *refs, *args)
        assert bad.returncode == 2 and words in bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_coverage_on_real_convirt_with_d_above_the_sample(
    convirt_dir, make_store, kernel, unbiased
):
    """Real embeddings, d = 512 above N = 200 of n = 500 rows: the high-dimensional case
    where biased CKA on a sample is most inflated and groups hold only 20 rows."""
    features = np.load(convirt_dir / "features_convirt.npy")
    path = make_store("convirt.h5", X=features[0], Y=features[1])
    refs = [f"{path}:image", f"{path}:text"]
    exact = cka_report(refs, kernel=kernel, unbiased=unbiased).to_json()["matrix"][0][1]
    hits = 0
    for seed in range(20):
        doc = cka_report(refs, kernel=kernel, unbiased=unbiased, sample=200, seed=seed).to_json()
        low, high = doc["estimate"]["interval"]["matrix"][0][1]
        hits += low <= exact <= high
    assert hits >= 17
