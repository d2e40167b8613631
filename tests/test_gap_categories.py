"""Per-category gap: subsets, the two category x category tables, ranking, CLI --by-category."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.core.errors import StoreError
from mgap.engine.measures import categories
from mgap.engine.measures.categories import category_breakdown
from mgap.engine.measures.gap import gap_metrics
from mgap.engine.studies.gap import gap_report
from mgap.store import open_store

NAMES = ["cat", "dog", "car", "bus"]
SUPERS = ["animal", "animal", "vehicle", "vehicle"]


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.fixture
def labelled(rng):
    """40 images, 2-3 captions each; primary category per image (-1 for five unlabelled)."""
    n, d = 40, 10
    primary = np.arange(n) % 4
    primary[:5] = -1
    primary[primary == 3] = 2  # "bus" has no image: it must not appear
    X = rng.standard_normal((n, d)) + 2.0 * np.eye(d)[primary + 2]
    index = np.concatenate([np.repeat(np.arange(n), 2), np.arange(0, n, 3)])
    Y = X[index] + 0.8 * rng.standard_normal((len(index), d)) - np.eye(d)[0]
    return X, Y, index, primary


def test_groups_match_gap_metrics_on_subsets(labelled):
    X, Y, index, primary = labelled
    doc = category_breakdown(X, Y, index, primary, NAMES, SUPERS, top_k=2)
    rows = {(r["name"], r["kind"]): r for r in doc["by_category"]}
    assert set(rows) == {
        ("cat", "category"),
        ("dog", "category"),
        ("car", "category"),
        ("animal", "supercategory"),
        ("vehicle", "supercategory"),
    }
    for (name, kind), row in rows.items():
        members = (
            primary == NAMES.index(name)
            if kind == "category"
            else np.isin(primary, [c for c, s in enumerate(SUPERS) if s == name])
        )
        images = np.flatnonzero(members)
        captions = np.flatnonzero(members[index])
        renumber = {int(i): k for k, i in enumerate(images)}
        expected = gap_metrics(
            X[images], Y[captions], np.array([renumber[int(i)] for i in index[captions]]), top_k=2
        )
        assert row["n_images"] == images.size and row["n_texts"] == captions.size
        for key in ("l2m", "l2i", "rmg", "mean_paired_cosine", "intra_text_cosine"):
            assert row[key] == pytest.approx(expected[key], abs=1e-12)


def test_tables_against_brute_force(labelled, monkeypatch):
    monkeypatch.setattr(categories, "PAIRWISE_BLOCK", 7)  # several blocks
    X, Y, index, primary = labelled
    doc = category_breakdown(X, Y, index, primary, NAMES, SUPERS)
    centroid = doc["category_centroid_distances"]
    pairwise = doc["category_pairwise_distances"]
    assert centroid["names"] == pairwise["names"] == ["cat", "dog", "car"]
    Xn, Yn = _unit(X), _unit(Y)
    for a in range(3):
        for b in range(3):
            imgs, txts = Xn[primary == a], Yn[primary[index] == b]
            expected = np.linalg.norm(imgs.mean(0) - txts.mean(0))
            assert centroid["matrix"][a, b] == pytest.approx(expected, abs=1e-12)
            brute = np.linalg.norm(imgs[:, None, :] - txts[None, :, :], axis=2).mean()
            assert pairwise["matrix"][a, b] == pytest.approx(brute, abs=1e-5)
    by_name = {r["name"]: r for r in doc["by_category"] if r["kind"] == "category"}
    for a, name in enumerate(["cat", "dog", "car"]):
        assert centroid["matrix"][a, a] == pytest.approx(by_name[name]["l2m"], abs=1e-12)
    ranked = [r["l2m"] for r in doc["category_ranking"]]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) == 3
    assert [r["rank"] for r in doc["category_ranking"]] == [1, 2, 3]


def test_store_without_categories_refuses_by_category(rng, make_store):
    path = make_store(X=rng.standard_normal((6, 3)), Y=rng.standard_normal((6, 3)))
    with pytest.raises(StoreError, match="no category labels"):
        gap_report(open_store(path), by_category=True).to_json()


def test_cli_by_category(labelled, make_store, cli):
    X, Y, index, primary = labelled
    labels = np.zeros((len(X), 4), dtype=bool)
    labels[primary >= 0, primary[primary >= 0]] = True
    path = make_store(
        X=X,
        Y=Y,
        caption_image_row=index,
        category_names=NAMES,
        supercategories=SUPERS,
        primary=primary,
        labels=labels,
    )
    done = cli("gap", str(path), "--by-category", "--no-separability", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert "separability" not in doc
    assert {r["name"] for r in doc["by_category"]} == {"cat", "dog", "car", "animal", "vehicle"}
    assert np.asarray(doc["category_centroid_distances"]["matrix"]).shape == (3, 3)
    assert "peers" in doc["category_pairwise_distances"]["definition"]
    people = cli("gap", str(path), "--by-category", "--no-separability")
    assert people.returncode == 0, people.stderr
    assert "By category" in people.stdout and "vehicle" in people.stdout
    retrieval = cli("retrieval", str(path), "--by-category", "--json")
    assert retrieval.returncode == 0, retrieval.stderr
    rows = {r["name"]: r for r in json.loads(retrieval.stdout)["by_category"]}
    assert rows["cat"]["n_images"] == int((primary == 0).sum())
    assert rows["vehicle"]["n_texts"] == int((primary[index] == 2).sum())
