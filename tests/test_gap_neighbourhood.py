"""Neighbourhood test: Kendall-tau distance closed forms, prompts vs captions, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures.neighbourhood import kendall_tau_distance, neighbourhood_test
from mgap.engine.studies.neighbourhood import neighbourhood_report
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
    doc = neighbourhood_report(open_store(path)).to_json()
    assert doc["text_side"] == "caption centroids"
    assert doc["n_categories"] == 5
    assert doc["mean_distance"] < 0.2


def test_store_report_prefers_prompts(rng, make_store, cli):
    path, _, X = _labelled_store(make_store, rng, prompts=True)
    store = open_store(path)
    doc = neighbourhood_report(store).to_json()
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


# ---- the published definition ("Two Effects, One Trigger", gap_neighborhood_test.py) ----------
def _peer_ranks(arr):
    """compute_ranks as published: 1-based ranks, ties broken by position (stable sort)."""
    order = sorted(enumerate(arr), key=lambda x: x[1])
    rank = {element[0]: i + 1 for i, element in enumerate(order)}
    return [rank[i] for i in range(len(arr))]


def _discordant_share(ranks_a, ranks_b):
    """Textbook Kendall distance on two rank vectors. The published kendall_tau_distance reads
    rank vectors as orderings (order.index(x)), which changes with class numbering; the
    paper's text defines the distance as the share of discordant pairs, which this is."""
    n, bad = len(ranks_a), 0
    for i in range(n):
        for j in range(i + 1, n):
            if (ranks_a[i] - ranks_a[j]) * (ranks_b[i] - ranks_b[j]) < 0:
                bad += 1
    return bad / (n * (n - 1) / 2)


def _peer_neighbourhood(image_features, text_features, obj_labels):
    """Transcription of gap_neighborhood_test.main after encoding: rows are unit vectors,
    dist_metric(v1, v2) = (v1 @ v2.T).mean(), text rows are the class prompts, and every
    category keeps itself in its row."""
    K = len(np.unique(obj_labels))
    img_mat, txt_mat = np.empty((K, K)), np.empty((K, K))
    for l1 in range(K):
        for l2 in range(K):
            img_mat[l1, l2] = (
                image_features[obj_labels == l1] @ image_features[obj_labels == l2].T
            ).mean()
            txt_mat[l1, l2] = (text_features[l1, None] @ text_features[l2, None].T).mean()
    return [
        _discordant_share(_peer_ranks(img_mat[l1]), _peer_ranks(txt_mat[l1])) for l1 in range(K)
    ]


def _class_store(make_store, name, X, primary, prompts, names):
    K = len(names)
    return make_store(
        name,
        X=X,
        Y=prompts[primary],  # one copy of its class prompt per image, as image folders store it
        category_names=names,
        supercategories=[""] * K,
        primary=primary,
        labels=np.eye(K, dtype=bool)[primary],
        prompts={"category": (names, prompts)},
    )


def _fixed_classification(rng, K=7, n=63, d=10):
    centres = rng.standard_normal((K, d))
    primary = np.arange(n) % K
    X = centres[primary] + 0.9 * rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    prompts = centres + 0.8 * rng.standard_normal((K, d))
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    return X, primary, prompts, [f"class{i}" for i in range(K)]


def test_default_is_the_published_mean_pairwise_definition(rng, make_store):
    X, primary, prompts, names = _fixed_classification(rng)
    expected = _peer_neighbourhood(X, prompts, primary)
    doc = neighbourhood_report(
        open_store(_class_store(make_store, "c.h5", X, primary, prompts, names))
    ).to_json()
    assert doc["similarity"] == "mean_pairwise" and doc["exclude_self"] is False
    assert doc["text_side"] == "class prompts"
    got = [row["distance"] for row in doc["per_category"]]
    assert got == pytest.approx(expected, abs=1e-12)
    assert doc["mean_distance"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_centroid_exclude_self_variant_is_mgaps_earlier_definition(rng, make_store):
    X, primary, prompts, names = _fixed_classification(rng)
    K = len(names)
    centroids = np.stack([X[primary == c].mean(0) for c in range(K)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sim_i, sim_t = centroids @ centroids.T, prompts @ prompts.T
    expected = []
    for a in range(K):
        others = [c for c in range(K) if c != a]
        expected.append(_discordant_share(list(sim_i[a, others]), list(sim_t[a, others])))
    path = _class_store(make_store, "c.h5", X, primary, prompts, names)
    doc = neighbourhood_report(open_store(path), similarity="centroid", exclude_self=True).to_json()
    assert doc["similarity"] == "centroid" and doc["exclude_self"] is True
    assert [r["distance"] for r in doc["per_category"]] == pytest.approx(expected, abs=1e-12)


def test_renumbering_classes_changes_nothing(rng, make_store):
    X, primary, prompts, names = _fixed_classification(rng)
    perm = rng.permutation(len(names))  # new id of old class c is perm[c]
    new_names = [""] * len(names)
    new_prompts = np.empty_like(prompts)
    for old, new in enumerate(perm):
        new_names[new] = f"renamed-{names[old]}"
        new_prompts[new] = prompts[old]
    a = _class_store(make_store, "a.h5", X, primary, prompts, names)
    b = _class_store(make_store, "b.h5", X, perm[primary], new_prompts, new_names)
    for kwargs in ({}, {"similarity": "centroid", "exclude_self": True}):
        doc_a = neighbourhood_report(open_store(a), **kwargs).to_json()
        doc_b = neighbourhood_report(open_store(b), **kwargs).to_json()
        by_name = {r["name"].removeprefix("renamed-"): r["distance"] for r in doc_b["per_category"]}
        assert {r["name"]: r["distance"] for r in doc_a["per_category"]} == pytest.approx(by_name)
        assert doc_a["mean_distance"] == pytest.approx(doc_b["mean_distance"], abs=1e-15)


def test_unknown_similarity_is_a_usage_error(rng, make_store):
    from mgap.core.errors import UsageError

    X, primary, prompts, names = _fixed_classification(rng)
    path = _class_store(make_store, "c.h5", X, primary, prompts, names)
    with pytest.raises(UsageError, match="unknown similarity"):
        neighbourhood_report(open_store(path), similarity="median").to_json()


def test_cli_names_the_definition_and_takes_the_variant(rng, make_store, cli):
    X, primary, prompts, names = _fixed_classification(rng)
    path = str(_class_store(make_store, "c.h5", X, primary, prompts, names))
    default = json.loads(cli("neighbours", path, "--json").stdout)
    variant = cli("neighbours", path, "--similarity", "centroid", "--exclude-self", "--json")
    assert variant.returncode == 0, variant.stderr
    doc = json.loads(variant.stdout)
    assert (default["similarity"], default["exclude_self"]) == ("mean_pairwise", False)
    assert (doc["similarity"], doc["exclude_self"]) == ("centroid", True)
    expected = neighbourhood_report(
        open_store(path), similarity="centroid", exclude_self=True
    ).to_json()
    assert doc["mean_distance"] == pytest.approx(expected["mean_distance"])
    bad = cli("neighbours", path, "--similarity", "median")
    assert bad.returncode == 2 and "unknown similarity" in bad.stderr
