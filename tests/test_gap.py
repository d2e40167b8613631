"""Gap metrics (docs/design.md §7): closed forms, brute force, invariances, real ConVIRT data, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.gap import RMG_FLOOR, gap_metrics, intra_cosine
from mgap.engine.measures.rows import unit_rows
from mgap.engine.studies.gap import gap_report
from mgap.store import open_store

GAP_KEYS = {
    "n_images",
    "n_texts",
    "dim",
    "l2m",
    "l2i",
    "mean_paired_cosine",
    "intra_image_cosine",
    "intra_text_cosine",
    "rmg",
    "top_dims",
}


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _pairs(rng, n=30, per=3, d=12, noise=0.7, offset=1.5):
    """Images, `per` captions each (shifted so there is a gap), and the caption -> image index."""
    X = rng.standard_normal((n, d)) + offset * np.eye(d)[0]
    index = np.repeat(np.arange(n), per)
    Y = X[index] + noise * rng.standard_normal((n * per, d)) - offset * np.eye(d)[1]
    return X, Y, index


def test_metrics_match_brute_force(rng):
    X, Y, index = _pairs(rng)
    got = gap_metrics(X, Y, index, top_k=3)
    Xn, Yn = _unit(X), _unit(Y)
    l2m_sq = (Xn @ Xn.T).mean() + (Yn @ Yn.T).mean() - 2 * (Xn @ Yn.T).mean()
    assert got["l2m"] == pytest.approx(np.sqrt(l2m_sq), abs=1e-12)
    n, m = len(X), len(Y)
    gram_x, gram_y = Xn @ Xn.T, Yn @ Yn.T
    intra_x = (gram_x.sum() - np.trace(gram_x)) / (n * (n - 1))
    intra_y = (gram_y.sum() - np.trace(gram_y)) / (m * (m - 1))
    cos = np.array([Xn[index[j]] @ Yn[j] for j in range(m)])
    dist = np.array([np.linalg.norm(Xn[index[j]] - Yn[j]) for j in range(m)])
    assert got["intra_image_cosine"] == pytest.approx(intra_x, abs=1e-12)
    assert got["intra_text_cosine"] == pytest.approx(intra_y, abs=1e-12)
    assert got["mean_paired_cosine"] == pytest.approx(cos.mean(), abs=1e-12)
    assert got["l2i"] == pytest.approx(dist.mean(), abs=1e-12)
    mm = (1 - cos.mean()) / 2
    expected_rmg = mm / (mm + ((1 - intra_x) / 2 + (1 - intra_y) / 2) / 2)
    assert got["rmg"] == pytest.approx(expected_rmg, abs=1e-12)
    assert set(got) == GAP_KEYS
    assert (got["n_images"], got["n_texts"], got["dim"]) == (30, 90, 12)


def test_top_dims_shares(rng):
    X, Y, index = _pairs(rng)
    got = gap_metrics(X, Y, index, top_k=12)["top_dims"]
    delta = _unit(X).mean(0) - _unit(Y).mean(0)
    assert [r["dim"] for r in got] == list(np.argsort(-np.abs(delta)))
    assert got[0]["dim"] in (0, 1)  # the two shifted axes carry the gap
    assert [r["delta"] for r in got[:2]] == pytest.approx(delta[[got[0]["dim"], got[1]["dim"]]])
    assert got[-1]["cumulative_share"] == pytest.approx(1.0)
    assert sum(r["share"] for r in got) == pytest.approx(1.0)
    assert got[0]["share"] == pytest.approx(delta[got[0]["dim"]] ** 2 / (delta @ delta))


def test_identical_sides_give_zero_gap_and_rmg_floor(rng):
    X = rng.standard_normal((25, 8))
    got = gap_metrics(X, X.copy(), np.arange(25))
    assert got["l2m"] == pytest.approx(0.0, abs=1e-12)
    assert got["l2i"] == pytest.approx(0.0, abs=1e-6)
    assert got["mean_paired_cosine"] == pytest.approx(1.0)
    d = (1 - got["intra_image_cosine"]) / 2
    assert got["rmg"] == pytest.approx(RMG_FLOOR / (RMG_FLOOR + d))


def test_invariant_to_row_permutation_and_row_scale(rng):
    X, Y, index = _pairs(rng)
    base = gap_metrics(X, Y, index, top_k=5)
    perm_x, perm_y = rng.permutation(len(X)), rng.permutation(len(Y))
    new_position = np.argsort(perm_x)
    shuffled = gap_metrics(
        X[perm_x] * rng.uniform(0.1, 10, (len(X), 1)),
        Y[perm_y],
        new_position[index[perm_y]],
        top_k=5,
    )
    for key in GAP_KEYS - {"top_dims"}:
        assert shuffled[key] == pytest.approx(base[key], abs=1e-12)
    assert [r["dim"] for r in shuffled["top_dims"]] == [r["dim"] for r in base["top_dims"]]


def test_intra_cosine_never_builds_gram_and_handles_zero_rows(rng):
    Xn = unit_rows(np.vstack([rng.standard_normal((10, 4)), np.zeros((1, 4))]))
    assert np.isfinite(Xn).all()
    gram = Xn @ Xn.T
    assert intra_cosine(Xn) == pytest.approx((gram.sum() - np.trace(gram)) / (11 * 10))
    assert np.isnan(intra_cosine(Xn[:1]))


def test_bad_shapes_are_value_errors(rng):
    with pytest.raises(ValueError, match="dim"):
        gap_metrics(rng.standard_normal((3, 4)), rng.standard_normal((3, 5)), np.arange(3))
    with pytest.raises(ValueError, match="outside"):
        gap_metrics(rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), np.array([0, 1, 3]))


def test_separability_of_far_apart_modalities(rng):
    X, Y, index = _pairs(rng, n=60, per=1, offset=6.0, noise=0.3)
    sep = gap_metrics(X, Y, index, separability=True)["separability"]
    assert sep["accuracy"] == pytest.approx(1.0)
    assert sep["n_per_side"] == 60
    same = gap_metrics(X, X.copy(), np.arange(60), separability=True)["separability"]
    assert same["accuracy"] < 0.7


def test_convirt_store_matches_plain_numpy(convirt_dir, make_store):
    pairs = np.load(convirt_dir / "features_convirt.npy")
    path = make_store("convirt.h5", X=pairs[0], Y=pairs[1])
    doc = gap_report(open_store(path), separability=False).to_json()
    X, Y = pairs[0].astype(np.float64), pairs[1].astype(np.float64)
    X /= np.sqrt((X**2).sum(1))[:, None]
    Y /= np.sqrt((Y**2).sum(1))[:, None]
    l2m = np.sqrt(((X.mean(0) - Y.mean(0)) ** 2).sum())
    paired = (X * Y).sum(1).mean()
    n = len(X)
    intra_x = ((X @ X.T).sum() - n) / (n * (n - 1))
    intra_y = ((Y @ Y.T).sum() - n) / (n * (n - 1))
    m = (1 - paired) / 2
    rmg = m / (m + ((1 - intra_x) / 2 + (1 - intra_y) / 2) / 2)
    assert doc["l2m"] == pytest.approx(l2m, abs=1e-4)
    assert doc["rmg"] == pytest.approx(rmg, abs=1e-4)
    assert doc["mean_paired_cosine"] == pytest.approx(paired, abs=1e-4)
    assert doc["l2i"] == pytest.approx(np.linalg.norm(X - Y, axis=1).mean(), abs=1e-4)
    assert (doc["n_images"], doc["n_texts"], doc["dim"]) == (500, 500, 512)
    assert set(doc) >= GAP_KEYS


def test_first_caption_mode(rng, make_store):
    X, Y, index = _pairs(rng, n=12, per=3)
    path = make_store(X=X, Y=Y, caption_image_row=index)
    doc = gap_report(open_store(path), captions="first", separability=False).to_json()
    expected = gap_metrics(X, Y[::3], np.arange(12))
    assert doc["n_texts"] == 12
    assert doc["l2m"] == pytest.approx(expected["l2m"], abs=1e-6)
    assert doc["rmg"] == pytest.approx(expected["rmg"], abs=1e-6)
    with pytest.raises(UsageError):
        gap_report(open_store(path), captions="second").to_json()


def test_one_sided_store_is_a_store_error(rng, make_store):
    path = make_store("text.h5", X=None, Y=rng.standard_normal((5, 4)), image_ids=list("abcde"))
    with pytest.raises(StoreError, match="text-only store"):
        gap_report(open_store(path)).to_json()


def test_cli_gap_json_and_errors(rng, make_store, cli, tmp_path):
    X, Y, index = _pairs(rng, n=20, per=2)
    path = make_store(X=X, Y=Y, caption_image_row=index)
    done = cli("gap", str(path), "--json", "--top-k", "3", "--no-separability")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    header = {"store", "model", "dataset", "split", "status", "captions", "text_side", "compute"}
    assert set(doc) == GAP_KEYS | header and doc["text_side"] == "captions"
    assert doc["compute"] == {"device": "cpu", "engine": "numpy", "precision": "float32"}
    assert len(doc["top_dims"]) == 3
    assert doc["l2m"] == pytest.approx(gap_metrics(X, Y, index)["l2m"], abs=1e-6)

    text_only = make_store("t.h5", X=None, Y=Y, image_ids=[str(i) for i in range(20)])
    failed = cli("gap", str(text_only), "--by-category")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "mgap: error: gap needs both image and text embeddings; t.h5 is a text-only store; "
        "extract with a two-tower model (CLIP, SigLIP, BLIP)"
    ]
    missing = cli("gap", str(tmp_path / "nope.h5"), "--json")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    usage = cli("gap", str(path), "--captions", "second")
    assert usage.returncode == 2 and "--captions" in usage.stderr


def test_cli_gap_imports_neither_torch_nor_textual(rng, make_store):
    import subprocess
    import sys

    path = make_store(X=rng.standard_normal((20, 6)), Y=rng.standard_normal((20, 6)))
    code = (
        "import sys\nfrom mgap.cli import app\n"
        f"try:\n    app(['gap', {str(path)!r}, '--json'])\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('torch', 'textual') if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    doc = json.loads(done.stdout)
    assert doc["n_images"] == 20 and 0 <= doc["separability"]["accuracy"] <= 1
