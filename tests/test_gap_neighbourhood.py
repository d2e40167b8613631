"""Neighbourhood test: Kendall-tau distance closed forms, prompts vs captions, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.analysis.neighbourhood import (
    kendall_tau_distance,
    neighbourhood_report,
    neighbourhood_test,
)
from mgap.store import open_store


def test_kendall_tau_distance_closed_forms(rng):
    a = rng.standard_normal(12)
    assert kendall_tau_distance(a, 3 * a + 1) == 0.0
    assert kendall_tau_distance(a, -a) == 1.0
    b = a.copy()
    order = np.argsort(a)
    b[order[0]], b[order[1]] = a[order[1]], a[order[0]]  # one adjacent swap
    assert kendall_tau_distance(a, b) == pytest.approx(1 / 66)
    scipy_stats = pytest.importorskip("scipy.stats")
    c = rng.standard_normal(12)
    tau = scipy_stats.kendalltau(a, c).statistic
    assert kendall_tau_distance(a, c) == pytest.approx((1 - tau) / 2)


def test_same_geometry_gives_zero_and_unrelated_gives_half(rng):
    centroids = rng.standard_normal((8, 16))
    same = neighbourhood_test(centroids, centroids * 2.0, list("abcdefgh"))
    assert same["mean_distance"] == 0.0 and same["n_categories"] == 8
    rotation = np.linalg.qr(rng.standard_normal((16, 16)))[0]
    assert neighbourhood_test(centroids, centroids @ rotation, list("abcdefgh"))[
        "mean_distance"
    ] == pytest.approx(0.0, abs=1e-12)
    many = rng.standard_normal((60, 32))
    unrelated = neighbourhood_test(many, rng.standard_normal((60, 32)), [str(i) for i in range(60)])
    assert unrelated["mean_distance"] == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="at least 3"):
        neighbourhood_test(centroids[:2], centroids[:2], ["a", "b"])


def _labelled_store(make_store, rng, prompts):
    C, d = 5, 12
    centres = rng.standard_normal((C, d))
    primary = np.arange(40) % C
    X = centres[primary] + 0.2 * rng.standard_normal((40, d))
    Y = centres[primary] + 0.2 * rng.standard_normal((40, d)) + 3.0  # a gap, same neighbourhoods
    names = [f"c{i}" for i in range(C)]
    labels = np.eye(C, dtype=bool)[primary]
    kwargs = (
        {"prompts": {"category": (names[::-1], rng.standard_normal((C, d)))}} if prompts else {}
    )
    path = make_store(
        X=X,
        Y=Y,
        category_names=names,
        supercategories=[""] * C,
        primary=primary,
        labels=labels,
        **kwargs,
    )
    return path, centres, X


def test_store_report_with_captions(rng, make_store):
    path, _, _ = _labelled_store(make_store, rng, prompts=False)
    doc = neighbourhood_report(open_store(path))
    assert doc["text_side"] == "caption centroids"
    assert doc["n_categories"] == 5
    assert doc["mean_distance"] < 0.2


def test_store_report_prefers_prompts(rng, make_store, cli):
    path, _, X = _labelled_store(make_store, rng, prompts=True)
    store = open_store(path)
    doc = neighbourhood_report(store)
    assert doc["text_side"] == "class prompts"
    names, prompts = store.prompt_embeddings()
    text = prompts[[names.index(f"c{i}") for i in range(5)]]
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    image = np.stack([unit[np.arange(40) % 5 == c].mean(0) for c in range(5)])
    expected = neighbourhood_test(image, text, [f"c{i}" for i in range(5)])
    assert doc["mean_distance"] == pytest.approx(expected["mean_distance"])
    done = cli("neighbours", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mean_distance"] == pytest.approx(doc["mean_distance"])
    unlabelled = make_store("u.h5", X=X, Y=X)
    failed = cli("neighbours", str(unlabelled))
    assert failed.returncode == 1 and "no category labels" in failed.stderr
