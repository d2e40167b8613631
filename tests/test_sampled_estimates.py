"""Sampled estimates (`--sample N`): seeded, labelled, and their 95 % intervals cover the
exact value at about the stated rate over many seeds on a moderate store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.compute.backend import resolve_backend
from mgap.engine.measures.categories import category_breakdown
from mgap.engine.studies.retrieval import retrieval_report
from mgap.store import open_store


@pytest.fixture
def moderate(rng):
    """1,500 images in 6 categories, 3 captions each, recall well inside (0, 1)."""
    n, per, d = 1500, 3, 24
    primary = rng.integers(0, 6, n)
    content = 1.5 * rng.standard_normal((6, d))[primary] + rng.standard_normal((n, d))
    X = content + 1.2 * rng.standard_normal((n, d)) + 2.0
    index = np.repeat(np.arange(n), per)
    Y = content[index] + 1.5 * rng.standard_normal((n * per, d)) - 1.0
    return X, Y, index, primary


def _store(make_store, X, Y, index, primary):
    labels = np.zeros((len(X), 6), dtype=bool)
    labels[np.arange(len(X)), primary] = True
    names = [f"c{i}" for i in range(6)]
    return make_store(
        X=X,
        Y=Y,
        caption_image_row=index,
        category_names=names,
        supercategories=["s"] * 6,
        primary=primary,
        labels=labels,
    )


def test_sampled_retrieval_intervals_cover_the_exact_recall(moderate, make_store):
    path = _store(make_store, *moderate)
    store = open_store(path)
    exact = retrieval_report(store).to_json()
    assert exact["estimate"] == {"mode": "exact", "n": 1500 + 4500}
    hits = total = 0
    for seed in range(12):
        doc = retrieval_report(store, sample=300, seed=seed).to_json()
        assert doc["estimate"]["mode"] == "sampled" and doc["estimate"]["seed"] == seed
        assert doc["estimate"]["n_image_queries"] == doc["estimate"]["n_text_queries"] == 300
        for direction in ("i2t", "t2i"):
            for k in ("R@1", "R@5", "R@10"):
                low, high = doc[direction]["interval"][k]
                assert low <= doc[direction][k] <= high
                hits += low <= exact[direction][k] <= high
                total += 1
    assert 0.0 < exact["t2i"]["R@1"] < 0.9  # a store where recall is uncertain
    assert hits / total >= 0.85  # nominal 95 %: 72 intervals, correlated within a seed


def test_sampling_is_seeded(moderate, make_store):
    store = open_store(_store(make_store, *moderate))
    a, b = (retrieval_report(store, sample=200, seed=3).to_json() for _ in range(2))
    assert a["i2t"] == b["i2t"] and a["t2i"] == b["t2i"]
    assert retrieval_report(store, sample=200, seed=4).to_json()["t2i"] != a["t2i"]


def test_all_queries_sampled_equals_exact(moderate, make_store):
    store = open_store(_store(make_store, *moderate))
    exact, full = retrieval_report(store).to_json(), retrieval_report(store, sample=10**6).to_json()
    for direction in ("i2t", "t2i"):
        for k in ("R@1", "R@5", "R@10"):
            assert full[direction][k] == pytest.approx(exact[direction][k], abs=1e-12)


def test_sampled_category_table_intervals_cover_the_exact_table(moderate):
    X, Y, index, primary = moderate
    names, supers = [f"c{i}" for i in range(6)], ["s"] * 6
    be = resolve_backend("cpu")
    exact = category_breakdown(X, Y, index, primary, names, supers, backend=be, exact=True)
    table = exact["category_pairwise_distances"]
    assert table["mode"] == "exact" and table["n_images"] == 1500
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    a, b = Xn[primary == 0], Yn[primary[index] == 1]
    brute = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).mean()
    assert table["matrix"][0, 1] == pytest.approx(brute, abs=1e-5)
    hits = total = 0
    for seed in range(10):
        doc = category_breakdown(
            X, Y, index, primary, names, supers, backend=be, sample=240, seed=seed
        )
        est = doc["category_pairwise_distances"]
        assert est["mode"] == "sampled" and est["per_category"] == 40
        assert est["n_images"] == 240 and not est["default"]
        inside = (np.asarray(est["low"]) <= table["matrix"]) & (
            table["matrix"] <= np.asarray(est["high"])
        )
        hits += int(inside.sum())
        total += inside.size
    assert hits / total >= 0.85  # nominal 95 % over 360 cells


def test_cli_retrieval_sample_json_and_device(moderate, make_store, cli):
    path = _store(make_store, *moderate)
    done = cli("retrieval", str(path), "--sample", "100", "--seed", "7", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["estimate"]["seed"] == 7 and doc["compute"]["device"] == "cpu"
    assert set(doc["i2t"]["interval"]) == {"R@1", "R@5", "R@10"}
    people = cli("retrieval", str(path), "--sample", "100")
    assert people.returncode == 0 and "95% intervals" in people.stdout
    bad = cli("retrieval", str(path), "--device", "tpu")
    assert bad.returncode == 2 and "--device" in bad.stderr
    both = cli("gap", str(path), "--by-category", "--sample", "50", "--exact")
    assert both.returncode == 2 and "exclude" in both.stderr


def test_repeated_retrieval_reads_the_sidecar_cache(moderate, make_store, monkeypatch):
    from mgap.engine.studies import retrieval

    store = open_store(_store(make_store, *moderate))
    first = retrieval_report(store, sample=150, seed=2).to_json()
    assert "cached" not in first

    def boom(*args, **kwargs):
        raise AssertionError("ranks recomputed instead of read from the cache")

    monkeypatch.setattr(retrieval, "retrieval_ranks", boom)
    again = retrieval_report(open_store(store.path), sample=150, seed=2).to_json()
    assert again["cached"] is True
    assert again["i2t"] == first["i2t"] and again["t2i"] == first["t2i"]
    monkeypatch.undo()
    exact = retrieval_report(store).to_json()  # other parameters: its own entry
    assert "cached" not in exact and exact["estimate"]["mode"] == "exact"
    assert retrieval_report(store).to_json()["cached"] is True


def test_knn_query_sample_covers_the_exact_mutual_knn(rng, make_store):
    from mgap.engine.studies.knn import knn_report

    n = 800
    X = rng.standard_normal((n, 12))
    Y = X @ rng.standard_normal((12, 12)) + 1.5 * rng.standard_normal((n, 12))
    path = make_store("knn.h5", X=X, Y=Y)
    refs = (f"{path}:image", f"{path}:text")
    exact = knn_report(*refs, k=10).to_json()
    assert exact["estimate"]["mode"] == "exact" and exact["cknna"] is not None
    be = resolve_backend("cpu")
    U = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    rows = np.array([3, 70, 799])
    assert np.array_equal(be.topk(U, 10, queries=rows)[0], be.topk(U, 10)[0][rows])
    hits = 0
    for seed in range(20):
        doc = knn_report(*refs, k=10, sample=150, seed=seed).to_json()
        est = doc["estimate"]
        assert est["mode"] == "sampled" and est["n"] == 150 and doc["cknna"] is None
        low, high = est["interval"]["mutual_knn"]
        assert low <= doc["mutual_knn"] <= high
        hits += low <= exact["mutual_knn"] <= high
    assert hits >= 16  # nominal 95 % of 20


def test_interactive_views_sample_only_large_cpu_stores(moderate, make_store, monkeypatch):
    from mgap.engine.studies import retrieval

    store = open_store(_store(make_store, *moderate))
    assert retrieval.interactive_sample(store) is None  # 1,500 x 4,500 pairs: exact
    monkeypatch.setattr(retrieval, "INTERACTIVE_EXACT_CELLS", 1000)
    if not resolve_backend("auto").device.startswith("cuda"):
        assert retrieval.interactive_sample(store) == retrieval.INTERACTIVE_SAMPLE
