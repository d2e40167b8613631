"""Retrieval by counting (CLIP_benchmark hit rates) against plain argsort, closed forms, ties, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures.retrieval import retrieval_metrics, retrieval_ranks
from mgap.store import open_store


def _argsort_recalls(X, Y, index, ks=(1, 5, 10)):
    """An independent CLIP_benchmark-style implementation: full score matrix, full argsort."""
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    scores = Y @ X.T  # captions x images
    order_t2i = np.argsort(-scores, axis=1)
    order_i2t = np.argsort(-scores.T, axis=1)
    positive = np.zeros_like(scores, dtype=bool)
    positive[np.arange(len(Y)), index] = True
    out = {"t2i": {}, "i2t": {}}
    for k in ks:
        out["t2i"][f"R@{k}"] = np.mean(np.take_along_axis(positive, order_t2i[:, :k], 1).any(1))
        hits = np.take_along_axis(positive.T, order_i2t[:, :k], 1).any(1)
        out["i2t"][f"R@{k}"] = np.mean(hits[np.bincount(index, minlength=len(X)) > 0])
    return out


def _pairs(rng, n=80, per=3, d=16, noise=1.0):
    X = rng.standard_normal((n, d))
    index = np.repeat(np.arange(n), per)
    return X, X[index] + noise * rng.standard_normal((n * per, d)), index


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_matches_full_argsort(rng, block):
    X, Y, index = _pairs(rng)
    got = retrieval_metrics(X, Y, index, block=block)
    expected = _argsort_recalls(X, Y, index)
    for side in ("i2t", "t2i"):
        for k in ("R@1", "R@5", "R@10"):
            assert got[side][k] == pytest.approx(expected[side][k], abs=1e-12)
    assert 0.05 < got["t2i"]["R@1"] < 0.95  # a meaningful, non-trivial case


def test_ranks_against_brute_force_with_uneven_captions(rng):
    X = rng.standard_normal((30, 8))
    index = rng.integers(0, 25, 70)  # images 25..29 have no caption; others 0..several
    Y = X[index] + 0.9 * rng.standard_normal((70, 8))
    i2t, t2i = retrieval_ranks(X, Y, index, block=4, cols=9)
    S = (X / np.linalg.norm(X, axis=1)[:, None]) @ (Y / np.linalg.norm(Y, axis=1)[:, None]).T
    for j in range(70):
        others = np.delete(S[:, j], index[j])
        assert t2i.above[j] == np.sum(others > S[index[j], j])
        assert t2i.tied[j] == 0
    for i in range(30):
        own = index == i
        assert i2t.valid[i] == own.any()
        if own.any():
            assert i2t.above[i] == np.sum(S[i, ~own] > S[i, own].max())
            assert (i2t.tied[i], i2t.right_tied[i]) == (0, 1)
    doc = retrieval_metrics(X, Y, index)
    assert doc["i2t"]["n"] == np.unique(index).size and doc["t2i"]["n"] == 70


def test_hit_rate_counts_any_caption_of_the_image():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    Y = np.array([[0.3, 1.0], [0.9, 0.1], [-1.0, 0.1], [0.1, 1.0]])  # image 0: captions 0 and 1
    index = np.array([0, 0, 2, 1])
    i2t, t2i = retrieval_ranks(X, Y, index)
    # caption 0 of image 0 is nearer to image 1 (rank 2), but caption 1 is image 0's first hit
    assert list(i2t.expected_rank()) == [1, 1, 1]
    assert list(t2i.expected_rank()) == [2, 1, 1, 1]
    doc = retrieval_metrics(X, Y, index, ks=(1,))
    assert doc["i2t"]["R@1"] == 1.0 and doc["t2i"]["R@1"] == 0.75
    assert doc["t2i"]["median_rank"] == 1.0 and doc["t2i"]["mean_rank"] == 1.25


def test_random_pairs_are_at_chance(rng):
    n = 1500
    X, Y = rng.standard_normal((n, 32)), rng.standard_normal((n, 32))
    doc = retrieval_metrics(X, Y, np.arange(n))
    for side in ("i2t", "t2i"):
        assert doc[side]["R@1"] < 5 / n
        assert doc[side]["R@10"] == pytest.approx(10 / n, abs=0.005)
        assert doc[side]["mean_rank"] == pytest.approx((n + 1) / 2, rel=0.06)


def test_identical_pairs_are_perfect(rng):
    X = rng.standard_normal((50, 8))
    perfect = retrieval_metrics(X, X.copy(), np.arange(50))
    assert perfect["i2t"]["R@1"] == perfect["t2i"]["R@1"] == 1.0
    assert perfect["i2t"]["mean_rank"] == perfect["t2i"]["median_rank"] == 1.0


def test_ties_are_broken_at_random_in_expectation():
    """A collapsed model (every score equal) gets chance recall, not 0 and not 1."""
    index = np.array([0, 0, 1, 2, 3, 4, 5])  # image 0 has two captions
    i2t, t2i = retrieval_ranks(np.ones((6, 4)), np.ones((7, 4)), index)
    assert list(t2i.tied) == [5] * 7 and list(t2i.above) == [0] * 7
    assert list(i2t.tied) == [5, 6, 6, 6, 6, 6] and list(i2t.right_tied) == [2, 1, 1, 1, 1, 1]
    doc = retrieval_metrics(np.ones((6, 4)), np.ones((7, 4)), index, ks=(1, 2, 6))
    assert doc["t2i"]["R@1"] == pytest.approx(1 / 6)
    assert doc["t2i"]["R@2"] == pytest.approx(2 / 6)
    assert doc["t2i"]["R@6"] == 1.0
    assert doc["t2i"]["mean_rank"] == pytest.approx(3.5)
    # image 0: 1 - C(5,1)/C(7,1) = 2/7; the others 1/7
    assert doc["i2t"]["R@1"] == pytest.approx((2 / 7 + 5 * (1 / 7)) / 6)
    # image 0: 1 - C(5,2)/C(7,2) = 11/21; the others 2/7
    assert doc["i2t"]["R@2"] == pytest.approx((11 / 21 + 5 * (2 / 7)) / 6)
    assert doc["i2t"]["mean_rank"] == pytest.approx((1 + 5 / 3 + 5 * 4) / 6)


def test_invariant_to_row_permutation_keeping_pairs(rng):
    X, Y, index = _pairs(rng, noise=1.2)
    base = retrieval_metrics(X, Y, index)
    px, py = rng.permutation(len(X)), rng.permutation(len(Y))
    moved = retrieval_metrics(X[px], Y[py], np.argsort(px)[index[py]], block=16)
    assert moved == base


def test_bad_cutoff(rng):
    with pytest.raises(ValueError, match=">= 1"):
        retrieval_metrics(np.ones((2, 2)), np.ones((2, 2)), np.arange(2), ks=(0,))


def test_convirt_recall_matches_plain_numpy(convirt_dir, make_store):
    from mgap.engine.studies.retrieval import retrieval_report

    pairs = np.load(convirt_dir / "features_convirt.npy")
    doc = retrieval_report(open_store(make_store("convirt.h5", X=pairs[0], Y=pairs[1]))).to_json()
    X, Y = pairs[0].astype(np.float64), pairs[1].astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    scores = X @ Y.T
    right = np.diag(scores)
    # ConVIRT repeats some reports verbatim: identical captions tie and share the credit
    above_i2t = (scores > right[:, None] + 1e-9).sum(1)
    tied_i2t = (np.abs(scores - right[:, None]) <= 1e-9).sum(1) - 1
    above_t2i = (scores > right[None, :] + 1e-9).sum(0)
    tied_t2i = (np.abs(scores - right[None, :]) <= 1e-9).sum(0) - 1
    assert tied_i2t.sum() > 0
    for k in (1, 5, 10):
        hit_i2t = np.clip((k - above_i2t) / (tied_i2t + 1), 0, 1)
        hit_t2i = np.clip((k - above_t2i) / (tied_t2i + 1), 0, 1)
        assert doc["i2t"][f"R@{k}"] == pytest.approx(hit_i2t.mean(), abs=1e-4)
        assert doc["t2i"][f"R@{k}"] == pytest.approx(hit_t2i.mean(), abs=1e-4)
    rank_i2t = above_i2t + 1 + tied_i2t / 2
    assert doc["i2t"]["median_rank"] == pytest.approx(np.median(rank_i2t), abs=1e-4)
    assert doc["i2t"]["mean_rank"] == pytest.approx(rank_i2t.mean(), abs=1e-4)
    assert doc["t2i"]["mean_rank"] == pytest.approx((above_t2i + 1 + tied_t2i / 2).mean(), abs=1e-4)


def test_cli_retrieval(rng, make_store, cli):
    X, Y, index = _pairs(rng, n=30, per=2)
    path = make_store(X=X, Y=Y, caption_image_row=index)
    done = cli("retrieval", str(path), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    expected = retrieval_metrics(X, Y, index)
    for side in ("i2t", "t2i"):
        assert {"R@1", "R@5", "R@10", "median_rank", "mean_rank"} <= set(doc[side])
        assert doc[side]["R@5"] == pytest.approx(expected[side]["R@5"])
    people = cli("retrieval", str(path))
    assert people.returncode == 0 and "text -> image" in people.stdout
    only_images = make_store("i.h5", X=X, Y=None, captions=[""] * 60, caption_image_row=index)
    failed = cli("retrieval", str(only_images), "--json")
    assert failed.returncode == 1 and failed.stdout == ""
    assert "retrieval needs both image and text embeddings" in failed.stderr
