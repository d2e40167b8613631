"""Seeded matching: base selection, QAP recovery, paper baselines, the report."""

from __future__ import annotations

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.measures import matching as M
from mgap.engine.studies.matching import match_report


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
    A, B = M.qap_kernel(X, "linear"), M.qap_kernel(Y, "linear")
    serial = M.seeded_qap(A, B, 10, restarts=3, seed=9, workers=1)
    parallel = M.seeded_qap(A, B, 10, restarts=3, seed=9, workers=2)
    assert np.array_equal(serial[0], parallel[0]) and serial[1] == parallel[1]
    assert np.array_equal(serial[0][:10], np.arange(10))  # seeds stay fixed


def test_baselines(rng):
    X = rng.normal(size=(70, 8))
    A = rng.normal(size=(8, 12))
    Y = X @ A  # an exact linear map between spaces of different size
    b, q = slice(0, 40), slice(40, 70)
    assert M.scored(M.linear_map_scores(X[b], Y[b], X[q], Y[q]))["accuracy"] == 1.0
    Q = _rotation(rng, 8)
    rel = M.relative_scores(X[b], X[b] @ Q, X[q], X[q] @ Q)
    assert M.scored(rel)["accuracy"] == 1.0
    assert M.scored(M.cosine_scores(X[q], 3 * X[q]))["accuracy"] == 1.0
    assert M.scored(M.cosine_scores(X[q], Y[q]))["accuracy"] is None


def _peer_stretch(X):
    """0-shot-llm-vision `stretch_representations`: torch's var (unbiased, ddof = 1) per
    dimension, then repr @ diag(1/sqrt(var)); no centring. The peer applies it to its base
    and query pools concatenated; mgap's base and queries share one pool, its aligned rows."""
    n = X.shape[0]
    var = ((X - X.mean(axis=0)) ** 2).sum(axis=0) / (n - 1)
    return X @ np.diag(1.0 / np.sqrt(var))


def test_stretch_is_the_published_formula(rng):
    X = rng.normal(size=(50, 4)) * [1, 10, 100, 0.5] + 7
    assert np.allclose(M.stretch(X), _peer_stretch(X), rtol=1e-13, atol=0)
    assert not np.allclose(M.stretch(X).mean(0), 0)  # no centring
    assert np.allclose(M.stretch(X).std(0, ddof=1), 1)


def test_stretch_ignores_a_per_dimension_scale(rng):
    X = rng.normal(size=(30, 5))
    scale = np.array([0.01, 1.0, 3.0, 50.0, 1e3])
    assert np.allclose(M.stretch(X * scale), M.stretch(X), rtol=1e-12)
    flat = np.hstack([X, np.full((30, 1), 2.0)])  # a constant dimension is left as is
    assert np.array_equal(M.stretch(flat)[:, -1], flat[:, -1])


def test_report_on_stores(make_store, rotated):
    X, Y = rotated
    a, b = make_store("a.h5", X=X), make_store("b.h5", X=Y)
    doc = match_report(str(a), str(b), n_base=40, n_query=30, restarts=2, method="all").to_json()
    assert (doc["n_base"], doc["n_query"], doc["n"]) == (40, 30, 90)
    assert doc["accuracy"] == doc["methods"]["qap"]["accuracy"] == 1.0
    assert doc["methods"]["local-cka"]["top1"] == 1.0
    assert doc["methods"]["linear"]["accuracy"] == 1.0
    assert doc["methods"]["relative"]["accuracy"] == 1.0
    assert doc["methods"]["cosine"]["accuracy"] < 0.5  # rotated: not the same space
    assert doc["chance"] == pytest.approx(1 / 30)
    stretched = match_report(
        str(a), str(b), n_base=40, n_query=30, method="linear", stretch_dims=True
    ).to_json()
    assert stretched["stretch"] is True and stretched["accuracy"] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"n_base": 80, "n_query": 20}, {"method": "magic"}, {"restarts": 0}, {"n_query": 1}],
)
def test_report_rejects_bad_options(make_store, rotated, kwargs):
    X, Y = rotated
    a, b = make_store("a.h5", X=X), make_store("b.h5", X=Y)
    with pytest.raises(UsageError):
        match_report(str(a), str(b), **kwargs)


def test_restarts_fork_only_from_a_single_threaded_process():
    import threading

    alone = threading.active_count() == 1  # earlier tests may leave threads behind
    assert M._start_method() == ("fork" if alone else "forkserver")
    seen = []
    worker = threading.Thread(target=lambda: seen.append(M._start_method()))
    worker.start()
    worker.join()
    assert seen == ["forkserver"]  # e.g. inside a TUI worker thread


# ---- the paper's QAP (0-shot-llm-vision src/utils.py, qap_matching) ---------------------------
def _peer_centering(K):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return H @ K @ H


def _peer_rbf(X):
    """rbf(X, sigma=None): σ = sqrt(median of the nonzero squared distances). torch.median
    takes the lower of the two middle values of the n(n-1) off-diagonal entries; numpy's
    median averages them. They agree when n(n-1)/2 is odd, so the tests use such n."""
    GX = X @ X.T
    KX = np.diag(GX) - GX + (np.diag(GX) - GX).T
    values = np.sort(KX[KX != 0])
    mdist = values[(values.size - 1) // 2]  # torch.median: the lower middle value
    sigma = np.sqrt(mdist)
    return np.exp(KX * (-0.5 / (sigma * sigma)))


def _peer_centered_scaled_corr(X, kernel):
    """centered_scaled_corr_rbf / centered_scaled_corr: HKH / sqrt(HSIC(K, K))."""
    K = _peer_rbf(X) if kernel == "rbf" else X @ X.T
    C = _peer_centering(K)
    return C / np.sqrt(np.sum(C * C))


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_qap_kernel_is_the_published_centred_scaled_correlation(rng, kernel):
    X = rng.normal(size=(14, 6))  # 14 * 13 / 2 = 91 pairs: an odd count, one median
    assert np.allclose(M.qap_kernel(X, kernel), _peer_centered_scaled_corr(X, kernel), atol=1e-13)


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_qap_kernel_ignores_rotation_shift_and_scale(rng, kernel):
    X = rng.normal(size=(20, 5))
    moved = 3.7 * X @ _rotation(rng, 5) + rng.normal(size=5)
    assert np.allclose(M.qap_kernel(moved, kernel), M.qap_kernel(X, kernel), atol=1e-12)
    with pytest.raises(UsageError, match="unknown kernel"):
        M.qap_kernel(X, "cosine")


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_qap_on_a_rotated_copy_reaches_the_closed_form_objective(rotated, kernel):
    X, Y = rotated  # identical kernels, each of unit norm: max tr(A P B Pᵀ) = ‖A‖² = 1
    b, q = np.arange(40), np.arange(40, 90)
    result = M.qap_accuracy(X[b], Y[b], X[q], Y[q], kernel=kernel, restarts=2, workers=1)
    assert result["accuracy"] == 1.0 and result["objective"] == pytest.approx(1.0, abs=1e-12)
    assert (result["kernel"], result["tol"], result["restarts"]) == (kernel, 1e-5, 2)


def test_faq_runs_with_the_papers_options(monkeypatch, rng):
    import scipy.optimize

    seen = []
    real = scipy.optimize.quadratic_assignment

    def spy(A, B, method="faq", options=None):
        seen.append(dict(options))
        return real(A, B, method=method, options=options)

    monkeypatch.setattr(scipy.optimize, "quadratic_assignment", spy)
    X = rng.normal(size=(12, 4))
    A = M.qap_kernel(X)
    M.seeded_qap(A, A, 5, restarts=3, workers=1)
    # the paper: {"P0": "randomized", "maximize": True, "partial_match": [[i, i]], "tol": 1e-5}
    assert len(seen) == 3
    for options in seen:
        assert options["P0"] == "randomized" and options["maximize"] is True
        assert options["tol"] == 1e-5
        assert np.array_equal(options["partial_match"], np.array([np.arange(5), np.arange(5)]).T)
    assert M.DEFAULT_RESTARTS == 500 and M.DEFAULT_KERNEL == "rbf"


def test_report_names_kernel_and_follows_it(make_store, rng):
    X = rng.normal(size=(60, 8))
    Y = np.tanh(X @ rng.normal(size=(8, 8))) + 0.3 * rng.normal(size=(60, 8))
    a, b = make_store("a.h5", X=X), make_store("b.h5", X=Y)
    docs = {
        k: match_report(str(a), str(b), n_base=30, n_query=20, restarts=3, kernel=k).to_json()
        for k in ("rbf", "linear")
    }
    for k, doc in docs.items():
        assert doc["kernel"] == k and doc["methods"]["qap"]["kernel"] == k
        assert doc["stretch_definition"] == "std_ddof1_over_all_rows_no_centring"
    assert (
        docs["rbf"]["methods"]["qap"]["objective"] != docs["linear"]["methods"]["qap"]["objective"]
    )
    with pytest.raises(UsageError, match="unknown kernel"):
        match_report(str(a), str(b), n_base=30, n_query=20, kernel="poly")


def test_match_cli_on_real_convirt_keeps_the_best_of_the_restarts(cli, convirt_dir, tmp_path):
    import json

    store = tmp_path / "convirt.h5"
    made = cli("import", str(convirt_dir / "features_convirt.npy"), "--out", str(store))
    assert made.returncode == 0, made.stderr
    refs = [f"{store}:image", f"{store}:text", "--base", "120", "--query", "60"]
    refs += ["--base-selection", "random", "--json"]
    docs = {}
    for restarts in ("1", "6"):
        done = cli("match", *refs, "--restarts", restarts, "--workers", "2")
        assert done.returncode == 0, done.stderr
        docs[restarts] = json.loads(done.stdout)
    qap = {r: d["methods"]["qap"] for r, d in docs.items()}
    assert docs["6"]["kernel"] == "rbf" and qap["6"]["tol"] == 1e-5 and qap["6"]["restarts"] == 6
    # restart i has the same start whatever the count, so six restarts never do worse than one
    assert qap["6"]["objective"] >= qap["1"]["objective"]
    assert 0 < qap["6"]["objective"] <= 1.0  # tr(A P B Pᵀ) of unit-norm kernels


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_qap_kernel_on_the_compute_backend_matches_float64(rng, kernel, engine):
    from mgap.engine.compute.backend import resolve_backend

    if engine == "torch":
        pytest.importorskip("torch")
    X = rng.normal(size=(14, 6))
    backend = resolve_backend("cpu", engine=engine)  # float32 products
    exact = _peer_centered_scaled_corr(X, kernel)
    assert np.allclose(M.qap_kernel(X, kernel, backend), exact, atol=1e-6)
