"""Projections: sampling, exact k-NN, PCA against numpy, caching, UMAP/t-SNE on small n."""

from __future__ import annotations

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.measures import projections as P
from mgap.engine.studies.projections import plot_report, project_store
from mgap.store import open_store


def _store(make_store, rng, n_images=40, per_image=2, dim=24, name="s.h5"):
    """Images in 3 categories (+ some without), `per_image` captions each, a modality gap."""
    X = rng.normal(size=(n_images, dim)) + 3.0
    rows = np.repeat(np.arange(n_images), per_image)
    Y = X[rows] + rng.normal(size=(rows.size, dim)) - 3.0
    primary = np.arange(n_images) % 4 - 1  # -1, 0, 1, 2
    labels = np.zeros((n_images, 3), dtype=bool)
    labels[primary >= 0, primary[primary >= 0]] = True
    return make_store(
        name,
        X=X,
        Y=Y,
        caption_image_row=rows,
        category_names=["cat", "dog", "car"],
        supercategories=["animal", "animal", "vehicle"],
        primary=primary,
        labels=labels,
        provenance={"model": "toy:test", "dataset": "synthetic", "split": "val"},
    )


def test_stratified_sample_is_proportional_and_keeps_every_stratum(rng):
    modality = np.r_[np.zeros(900, np.int8), np.ones(2700, np.int8)]
    category = np.r_[rng.integers(0, 3, 900), rng.integers(0, 3, 2700)]
    category[:5] = 7  # a tiny stratum must survive
    picked = P.stratified_sample(modality, category, 400, seed=1)
    assert picked.size == 400 and np.unique(picked).size == 400
    assert np.all(np.diff(picked) > 0)
    assert abs(int((modality[picked] == 0).sum()) - 100) <= 4
    assert 7 in category[picked]
    np.testing.assert_array_equal(picked, P.stratified_sample(modality, category, 400, seed=1))
    assert not np.array_equal(picked, P.stratified_sample(modality, category, 400, seed=2))
    np.testing.assert_array_equal(P.stratified_sample(modality, category, 5000, 0), np.arange(3600))


def test_exact_knn_equals_plain_brute_force(rng):
    Z = rng.normal(size=(257, 7))
    indices, distances = P.exact_knn(Z, 6)
    d = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    expected = np.argsort(d, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(indices[:, 0], np.arange(257))  # self first
    np.testing.assert_array_equal(np.sort(indices, 1), np.sort(expected, 1))
    np.testing.assert_allclose(distances, np.take_along_axis(d, indices, 1), atol=1e-5)


def test_pca_matches_numpy_svd_up_to_sign(rng):
    X = rng.normal(size=(60, 10)) * np.arange(1, 11)
    proj = P.project_arrays(X, method="pca", normalize=False)
    centred = X - X.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    expected = u[:, :2] * s[:2]
    got = proj.coords.astype(np.float64)
    signs = np.sign((got * expected).sum(0))
    np.testing.assert_allclose(got * signs, expected, rtol=1e-4, atol=1e-4)
    assert proj.coords.dtype == np.float32 and proj.n_shown == proj.n_total == 60


def test_project_store_joint_shapes_and_metadata(make_store, rng):
    store = open_store(_store(make_store, rng))
    proj = project_store(store, method="pca")
    assert proj.coords.shape == (120, 2) and proj.coords.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(proj.modality), [40, 80])
    texts = proj.modality == 1
    np.testing.assert_array_equal(proj.image_index[texts], np.repeat(np.arange(40), 2))
    # a caption carries its image's primary category
    np.testing.assert_array_equal(
        proj.category[texts], store.primary_category[proj.image_index[texts]]
    )
    assert proj.category_names == ["cat", "dog", "car"]
    assert proj.title() == "toy:test · synthetic val · PCA"
    # the gap dominates: PC1 separates the two modalities
    x = proj.coords[:, 0]
    assert min(x[~texts].min(), x[texts].min()) < 0 < max(x[~texts].max(), x[texts].max())
    assert np.sign(x[~texts].mean()) != np.sign(x[texts].mean())


def test_cache_hit_after_reopening(make_store, rng):
    path = _store(make_store, rng)
    said: list[str] = []
    first = project_store(open_store(path), method="pca", seed=3, on_fit=said.append)
    again = project_store(open_store(path), method="pca", seed=3, on_fit=said.append)
    assert not first.cached and again.cached
    assert said == ["fitting pca on 120 points"]  # nothing said on the cache hit
    np.testing.assert_array_equal(first.coords, again.coords)
    other = project_store(open_store(path), method="pca", seed=4)
    assert not other.cached
    assert not project_store(open_store(path), method="pca", seed=3, use_cache=False).cached


def test_beyond_max_points_fits_a_sample_and_says_so(make_store, rng):
    store = open_store(_store(make_store, rng, n_images=100))
    proj = project_store(store, method="pca", max_points=90)
    assert (proj.n_shown, proj.n_total) == (90, 300)
    assert proj.shown_label() == "90 of 300 shown"
    assert proj.coords.shape == (90, 2)
    assert abs(int((proj.modality == 0).sum()) - 30) <= 2
    assert plot_report(proj).n_shown == 90


@pytest.mark.slow  # numba compiles umap-learn on first use: ~35 s on 2 busy cores
def test_umap_is_deterministic_and_reuses_the_knn_graph(make_store, rng, monkeypatch):
    path = _store(make_store, rng, n_images=100)
    first = project_store(open_store(path), method="umap", n_neighbors=10)
    repeat = project_store(open_store(path), method="umap", n_neighbors=10, use_cache=False)
    np.testing.assert_array_equal(first.coords, repeat.coords)
    assert first.coords.shape == (300, 2) and np.isfinite(first.coords).all()

    def no_knn(*args, **kwargs):
        raise AssertionError("the k-NN graph should come from the cache")

    monkeypatch.setattr(P, "exact_knn", no_knn)
    changed = project_store(open_store(path), method="umap", n_neighbors=10, min_dist=0.5)
    assert not changed.cached and changed.params["min_dist"] == 0.5
    assert not np.array_equal(changed.coords, first.coords)


def test_tsne_shapes_and_determinism(rng):
    X = np.r_[rng.normal(size=(80, 16)) + 4, rng.normal(size=(80, 16)) - 4]
    a = P.project_arrays(X, method="tsne", perplexity=10, n_iter=150)
    b = P.project_arrays(X, method="tsne", perplexity=10, n_iter=150)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.coords.shape == (160, 2)
    # the two blobs stay apart
    left, right = a.coords[:80].mean(0), a.coords[80:].mean(0)
    assert np.linalg.norm(left - right) > 2 * a.coords[:80].std(0).max()


def test_tsne_layout_change_reuses_the_cached_knn_graph(make_store, rng, monkeypatch):
    path = _store(make_store, rng, n_images=60)
    first = project_store(open_store(path), method="tsne", perplexity=8, n_iter=100)
    monkeypatch.setattr(P, "exact_knn", lambda *a, **k: pytest.fail("k-NN not from the cache"))
    again = project_store(open_store(path), method="tsne", perplexity=8, n_iter=120)
    assert not first.cached and not again.cached
    assert again.coords.shape == first.coords.shape == (180, 2)
    assert project_store(open_store(path), method="tsne", perplexity=8, n_iter=120).cached


def test_bad_methods_and_parameters_are_usage_errors(rng):
    X = rng.normal(size=(20, 4))
    with pytest.raises(UsageError, match="unknown projection method"):
        P.project_arrays(X, method="mds")
    with pytest.raises(UsageError, match="perplexity"):
        P.project_arrays(X, method="umap", perplexity=5)
    with pytest.raises(P.MgapError, match="needs more than"):
        P.project_arrays(X[:10], method="umap")
