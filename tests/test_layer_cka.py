"""Alignment across depth: `mgap cka|knn STORE:SIDE@all ...` as real subprocesses on stores
with per-layer arrays written here per docs/store-format.md "Per-layer states"."""

from __future__ import annotations

import json

import numpy as np
import pytest
from layer_stores import add_layers

N = 120  # images; two captions each
IMAGE_LAYERS = {"count": 5, "layers": [0, 1, 2, 3, 4], "width": 12}
TEXT_LAYERS = {"count": 6, "layers": [0, 2, 5], "width": 7}


def _caption_means(T: np.ndarray) -> np.ndarray:
    """Each image's mean of its two unit-norm caption rows (captions 2i and 2i+1)."""
    U = T / np.linalg.norm(T, axis=1, keepdims=True)
    return (U[0::2] + U[1::2]) / 2


@pytest.fixture(scope="module")
def depth(tmp_path_factory):
    """A store with image layers 0-4 (width 12) and text layers 0, 2, 5 (width 7) that share
    a latent factor, and a store without layers."""
    rng = np.random.default_rng(3)
    tmp = tmp_path_factory.mktemp("depth")
    from mgap.store.build import store_from_arrays

    Z = rng.normal(size=(N, 4))
    rows = np.arange(2 * N) // 2
    image = {
        layer: np.hstack([Z * (1 + layer), rng.normal(size=(N, 8)) * (5 - layer)])
        for layer in IMAGE_LAYERS["layers"]
    }
    text = {
        layer: np.hstack([Z[rows, :3] * (layer + 1), rng.normal(size=(2 * N, 4))])
        for layer in TEXT_LAYERS["layers"]
    }
    path = store_from_arrays(
        tmp / "s.h5",
        image_embeddings=rng.normal(size=(N, 6)),
        text_embeddings=rng.normal(size=(2 * N, 6)),
        caption_image_row=rows,
    )
    add_layers(path, {"image": {"raw": image}}, count=IMAGE_LAYERS["count"])
    add_layers(path, {"text": {"raw": text}}, count=TEXT_LAYERS["count"])
    plain = store_from_arrays(
        tmp / "plain.h5", image_embeddings=rng.normal(size=(N, 6)), text_embeddings=None
    )
    image32 = {k: v.astype(np.float32).astype(np.float64) for k, v in image.items()}
    text32 = {k: _caption_means(v.astype(np.float32).astype(np.float64)) for k, v in text.items()}
    return {"s": str(path), "plain": str(plain), "image": image32, "text": text32}


def _json(cli, *args):
    result = cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _hsic_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Biased linear CKA written out: K = XXᵀ, L = YYᵀ, H = I − 11ᵀ/n, tr(KHLH)."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H)

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def test_self_matrix_is_symmetric_with_unit_diagonal(cli, depth):
    doc = _json(cli, "cka", f"{depth['s']}:image@all", f"{depth['s']}:image@all")
    M = np.array(doc["matrix"])
    assert doc["rows"] == doc["columns"] == IMAGE_LAYERS["layers"]
    assert doc["measure"] == "cka" and doc["kernel"] == "linear" and doc["n"] == N
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-12)
    assert np.array_equal(M, M.T)
    assert (M[~np.eye(len(M), dtype=bool)] < 1 - 1e-3).all()


def test_linear_cells_equal_hsic_written_out(cli, depth):
    doc = _json(cli, "cka", f"{depth['s']}:image@all", f"{depth['s']}:text@all")
    assert doc["rows"] == IMAGE_LAYERS["layers"] and doc["columns"] == TEXT_LAYERS["layers"]
    assert doc["dims"] == [IMAGE_LAYERS["width"], TEXT_LAYERS["width"]]
    expected = [
        [_hsic_cka(depth["image"][a], depth["text"][b]) for b in doc["columns"]]
        for a in doc["rows"]
    ]
    np.testing.assert_allclose(doc["matrix"], expected, rtol=1e-5, atol=1e-6)
    M = np.array(doc["matrix"])
    i, j = np.unravel_index(np.argmax(M), M.shape)
    assert doc["best"] == {"row": doc["rows"][i], "column": doc["columns"][j], "value": M[i, j]}


@pytest.mark.parametrize("options", [[], ["--unbiased"], ["--kernel", "rbf"]])
def test_cells_equal_single_pair_cka(cli, depth, options):
    s = depth["s"]
    doc = _json(cli, "cka", f"{s}:image@all", f"{s}:text@0,5", *options)
    assert doc["columns"] == [0, 5]
    for a, b, cell in ((1, "0", (1, 0)), (4, "-1", (4, 1))):  # text @-1 is layer 5
        single = _json(cli, "cka", f"{s}:image@{a}", f"{s}:text@{b}", *options)
        assert single["names"] == [f"s.h5:image@{a}", f"s.h5:text@{5 if b == '-1' else b}"]
        value = doc["matrix"][cell[0]][cell[1]]
        assert value == pytest.approx(single["matrix"][0][1], rel=1e-5, abs=1e-7)


def test_sampled_cells_use_the_same_rows_for_every_layer(cli, depth):
    s = depth["s"]
    doc = _json(cli, "cka", f"{s}:image@all", f"{s}:text@all", "--sample", "100", "--seed", "4")
    assert doc["estimate"]["mode"] == "sampled" and doc["estimate"]["n"] == 100
    single = _json(cli, "cka", f"{s}:image@3", f"{s}:text@2", "--sample", "100", "--seed", "4")
    assert doc["matrix"][3][1] == pytest.approx(single["matrix"][0][1], rel=1e-6)
    low, high = doc["estimate"]["interval"]["matrix"][3][1]
    assert [low, high] == pytest.approx(single["estimate"]["interval"]["matrix"][0][1], rel=1e-6)


def _neighbours(X: np.ndarray, k: int) -> list[set]:
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    return [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in S]


def test_knn_matrix_and_best_pair(cli, depth):
    s, k = depth["s"], 5
    doc = _json(cli, "knn", f"{s}:image@all", f"{s}:text@all", "--k", str(k))
    assert doc["measure"] == "mutual_knn" and doc["k"] == k
    for i, a in enumerate(doc["rows"]):
        na = _neighbours(depth["image"][a], k)
        for j, b in enumerate(doc["columns"]):
            nb = _neighbours(depth["text"][b], k)
            shared = np.mean([len(x & y) / k for x, y in zip(na, nb, strict=True)])
            assert doc["matrix"][i][j] == pytest.approx(shared, abs=1e-12)
    M = np.array(doc["matrix"])
    i, j = np.unravel_index(np.argmax(M), M.shape)
    assert doc["best"] == {"row": doc["rows"][i], "column": doc["columns"][j], "value": M[i, j]}
    C = np.array(doc["cknna"])
    i, j = np.unravel_index(np.argmax(C), C.shape)
    assert (doc["best_cknna"]["row"], doc["best_cknna"]["column"]) == (
        doc["rows"][i],
        doc["columns"][j],
    )
    single = _json(cli, "knn", f"{s}:image@2", f"{s}:text@5", "--k", str(k))
    assert doc["matrix"][2][2] == single["mutual_knn"]
    assert doc["cknna"][2][2] == pytest.approx(single["cknna"], abs=1e-12)


def test_text_output_names_the_best_pair(cli, depth):
    s = depth["s"]
    result = cli("cka", f"{s}:image@all", f"{s}:text@all")
    assert result.returncode == 0, result.stderr
    assert "best layer pair" in result.stdout + result.stderr
    assert "layers (rows)" in result.stdout


@pytest.mark.parametrize(
    ("refs", "words"),
    [
        (["{plain}:image@all", "{s}:image@all"], "has no per-layer image states"),
        (["{s}:image@7", "{s}:text@0"], "has no image layer 7"),
        (["{s}:text@1", "{s}:image@0"], "has no text layer 1"),
        (["{s}:image@x", "{s}:text@0"], "bad layer 'x'"),
        (["{s}:image@1,", "{s}:text@0"], "bad layer '1,'"),
        (["{s}:image@all", "{s}:text"], "names no layer"),
        (["{s}:image@all", "{s}:text@all", "{s}:image@0"], "compares two REFs"),
        (["{s}:image@all", "{s}:text@all", "--batch-size", "8"], "takes no @all REF"),
        (["{s}:image@all", "{s}:text@all", "--space", "lens"], "no 'lens' image layers"),
        (["{s}:image@all", "{s}:text@all", "--space", "up"], "unknown --space"),
    ],
)
def test_refusals_are_one_line(cli, depth, refs, words):
    args = [r.format(**depth) for r in refs]
    result = cli("cka", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mgap: error:") and words in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_knn_refuses_a_store_without_layers(cli, depth):
    result = cli("knn", f"{depth['plain']}@all", f"{depth['s']}:image@all")
    assert result.returncode == 2 and "has no per-layer image states" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sampled_knn_uses_the_same_queries_for_every_layer(cli, depth):
    s = depth["s"]
    args = ["--k", "5", "--sample", "60", "--seed", "2"]
    doc = _json(cli, "knn", f"{s}:image@all", f"{s}:text@all", *args)
    assert doc["estimate"]["mode"] == "sampled" and "cknna" not in doc
    single = _json(cli, "knn", f"{s}:image@0", f"{s}:text@0", *args)
    assert doc["matrix"][0][0] == single["mutual_knn"]
    assert (
        doc["estimate"]["interval"]["matrix"][0][0] == single["estimate"]["interval"]["mutual_knn"]
    )
    later = _json(cli, "knn", f"{s}:image@3", f"{s}:text@5", *args)
    assert doc["matrix"][3][2] == later["mutual_knn"]


def test_rbf_self_matrix(cli, depth):
    s = depth["s"]
    doc = _json(cli, "cka", f"{s}:text@all", f"{s}:text@all", "--kernel", "rbf", "--unbiased")
    M = np.array(doc["matrix"])
    assert np.array_equal(M, M.T) and np.allclose(np.diag(M), 1.0)
    assert doc["sigma"]["rows"] == doc["sigma"]["columns"] and len(doc["sigma"]["rows"]) == 3
