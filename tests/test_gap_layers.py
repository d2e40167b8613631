"""`mgap gap --layers`: every layer row against a brute force written here, the last lens
layer against plain `mgap gap`/`mgap retrieval`, and the one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import check_schema
from layer_stores import add_layers

from mgap.engine.reports import REPORTS, DepthGapReport
from mgap.engine.studies import gap_layers
from mgap.engine.studies.gap_layers import DepthRequest, gap_layers_report
from mgap.store import open_store

N, PER, D, LAYERS = 12, 2, 6, 4


def _unit(A: np.ndarray) -> np.ndarray:
    A = A.astype(np.float64)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _intra(An: np.ndarray) -> float:
    """Mean cosine over i != j, from the whole Gram matrix."""
    G = An @ An.T
    n = len(An)
    return float((G.sum() - np.trace(G)) / (n * (n - 1)))


def brute_row(X: np.ndarray, Y: np.ndarray, index: np.ndarray) -> dict:
    """docs/metrics.md "Gap across depth", transcribed: unit rows, then each metric."""
    Xn, Yn = _unit(X), _unit(Y)
    paired = np.einsum("ij,ij->i", Xn[index], Yn)
    cos, intra_x, intra_y = float(paired.mean()), _intra(Xn), _intra(Yn)
    m = (1.0 - cos) / 2.0
    m = m if m > 0 else 1e-3
    rmg = m / (m + ((1.0 - intra_x) / 2.0 + (1.0 - intra_y) / 2.0) / 2.0)
    S = Xn @ Yn.T  # images x captions; the data has no ties
    right = index[None, :] == np.arange(len(X))[:, None]
    best_right = np.where(right, S, -np.inf).max(axis=1)
    i2t = float(np.mean((np.where(right, -np.inf, S) > best_right[:, None]).sum(axis=1) == 0))
    own = S[index, np.arange(len(Y))]
    t2i = float(np.mean((own[:, None] < S.T).sum(axis=1) == 0))
    return {
        "dim": X.shape[1],
        "l2m": float(np.linalg.norm(Xn.mean(0) - Yn.mean(0))),
        "l2i": float(np.linalg.norm(Xn[index] - Yn, axis=1).mean()),
        "mean_paired_cosine": cos,
        "intra_image_cosine": intra_x,
        "intra_text_cosine": intra_y,
        "rmg": rmg,
        "i2t_r1": i2t,
        "t2i_r1": t2i,
    }


def layered(rng, depth: int = LAYERS):
    """(embeddings X, Y, caption -> image index, lens layers per side): layers drift from
    noise towards the embeddings, and the last lens layer is the embeddings themselves."""
    index = np.repeat(np.arange(N), PER)
    X = rng.standard_normal((N, D)) + 0.5
    Y = X[index] + rng.standard_normal((N * PER, D)) - 0.5
    image, text = {}, {}
    for k in range(depth):
        w = k / (depth - 1)
        image[k] = w * X + (1 - w) * rng.standard_normal(X.shape)
        text[k] = w * Y + (1 - w) * rng.standard_normal(Y.shape)
    return X.astype(np.float32), Y.astype(np.float32), index, image, text


@pytest.fixture
def depth_store(make_store, rng):
    X, Y, index, image, text = layered(rng)
    path = make_store("layers.h5", X=X, Y=Y, caption_image_row=index)
    add_layers(path, {"image": {"lens": image}, "text": {"lens": text}})
    return path, X, Y, index, image, text


def test_each_layer_row_equals_the_brute_force(depth_store):
    path, _, _, index, image, text = depth_store
    report = gap_layers_report(open_store(path))
    assert report.space == "lens" and report.retrieval.mode == "exact"
    assert [row.layer for row in report.layers] == list(range(LAYERS))
    for row in report.layers:
        want = brute_row(image[row.layer].astype(np.float32), text[row.layer], index)
        got = row.to_json()
        assert got["dim"] == want.pop("dim")
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-6), (row.layer, key)
        assert "i2t_r1_interval" not in got


def test_first_captions_and_raw_space(make_store, rng):
    X, Y, index, image, text = layered(rng)
    path = make_store("raw.h5", X=X, Y=Y, caption_image_row=index)
    add_layers(path, {"image": {"raw": image}, "text": {"raw": text}})
    report = gap_layers_report(open_store(path), DepthRequest(captions="first"))
    assert report.space == "raw" and report.n_texts == N
    first = np.arange(0, N * PER, PER)
    for row in report.layers:
        want = brute_row(image[row.layer].astype(np.float32), text[row.layer][first], index[first])
        assert row.l2m == pytest.approx(want["l2m"], abs=1e-6)
        assert row.rmg == pytest.approx(want["rmg"], abs=1e-6)
        assert row.t2i_r1 == pytest.approx(want["t2i_r1"], abs=1e-12)


def test_above_the_threshold_r1_is_sampled_with_its_interval(depth_store, monkeypatch):
    path, _, _, index, image, text = depth_store
    monkeypatch.setattr(gap_layers, "INTERACTIVE_EXACT_CELLS", 10)
    report = gap_layers_report(open_store(path))
    assert report.retrieval.mode == "sampled"
    # 5,000 queries per direction exceed the rows: every query is drawn, so R@1 is exact
    assert (report.retrieval.n_image_queries, report.retrieval.n_text_queries) == (N, N * PER)
    for row in report.layers:
        want = brute_row(image[row.layer].astype(np.float32), text[row.layer], index)
        assert row.i2t_r1 == pytest.approx(want["i2t_r1"], abs=1e-12)
        low, high = row.t2i_r1_interval
        assert low <= row.t2i_r1 <= high


def test_the_last_lens_layer_gives_plain_gap_and_retrieval(cli, depth_store):
    path = depth_store[0]
    done = cli("gap", str(path), "--layers", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    check_schema("gap", doc)
    assert REPORTS["gap"].variant(doc) is DepthGapReport
    assert DepthGapReport.from_json(doc).to_json() == doc
    last = doc["layers"][-1]
    plain = json.loads(cli("gap", str(path), "--json").stdout)
    for key in ("l2m", "l2i", "mean_paired_cosine", "intra_image_cosine", "intra_text_cosine"):
        assert last[key] == pytest.approx(plain[key], abs=1e-12), key
    assert last["rmg"] == pytest.approx(plain["rmg"], abs=1e-12)
    recall = json.loads(cli("retrieval", str(path), "--json").stdout)
    assert (last["i2t_r1"], last["t2i_r1"]) == (recall["i2t"]["R@1"], recall["t2i"]["R@1"])
    sampled = json.loads(cli("gap", str(path), "--layers", "--sample", "5", "--json").stdout)
    same = json.loads(cli("retrieval", str(path), "--sample", "5", "--json").stdout)
    last = sampled["layers"][-1]
    assert (last["i2t_r1"], last["i2t_r1_interval"]) == (
        same["i2t"]["R@1"],
        same["i2t"]["interval"]["R@1"],
    )
    assert last["t2i_r1_interval"] == same["t2i"]["interval"]["R@1"]
    table = cli("gap", str(path), "--layers")
    assert table.returncode == 0 and "Gap across depth (lens space)" in table.stdout


def _refused(cli, *args: str) -> str:
    done = cli("gap", *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_refusals_are_one_line(cli, make_store, rng):
    X, Y, index, image, text = layered(rng)
    bare = make_store("bare.h5", X=X, Y=Y, caption_image_row=index)
    assert "has no per-layer states" in _refused(cli, str(bare), "--layers")
    raw = make_store("raw.h5", X=X, Y=Y, caption_image_row=index)
    wide = {k: np.hstack([v, v[:, :2]]) for k, v in image.items()}
    add_layers(raw, {"image": {"raw": wide, "lens": image}, "text": {"raw": text, "lens": text}})
    line = _refused(cli, str(raw), "--layers", "--space", "raw")
    assert "8-wide" in line and "6-wide" in line and "raw spaces differ" in line
    assert "--space lens" in line
    lonely = make_store("lonely.h5", X=X, Y=Y, caption_image_row=index)
    add_layers(lonely, {"image": {"lens": image}, "text": {"lens": {k: text[k] for k in (0, 1)}}})
    line = _refused(cli, str(lonely), "--layers")
    assert "layer 2 is stored for the image side only" in line
    assert "--space goes with --layers" in _refused(cli, str(raw), "--space", "lens")
    assert "does not split" in _refused(cli, str(raw), "--layers", "--by-category")
    assert "--space must be one of raw, lens" in _refused(cli, str(raw), "--layers", "--space", "x")
