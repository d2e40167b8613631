"""REF handling and `mgap cka/knn/match` run as real subprocesses on real store files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.cka import linear_cka
from mgap.engine.measures.knn import mutual_knn
from mgap.engine.studies import refs


def _unit(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


@pytest.fixture
def stores(make_store, rng):
    """A two-tower store with 2 captions per image, a text-only store over a shuffled subset
    of the same ids, and an image-only store with other ids."""
    n = 30
    X = rng.normal(size=(n, 8))
    T = rng.normal(size=(2 * n, 8))
    ids = [f"img{i}" for i in range(n)]
    two = make_store("two.h5", X=X, Y=T, image_ids=ids, caption_image_row=np.arange(2 * n) // 2)
    order = rng.permutation(n)[:20]
    S = rng.normal(size=(20, 6))
    text = make_store(
        "text.h5",
        X=None,
        Y=S,
        image_ids=[ids[i] for i in order],
        caption_image_row=np.arange(20),
    )
    other = make_store("other.h5", X=rng.normal(size=(5, 4)), image_ids=list("abcde"))
    caption_means = (_unit(T[0::2]) + _unit(T[1::2])) / 2
    return {
        "two": two,
        "text": text,
        "other": other,
        "X": X,
        "T": caption_means,
        "S": S,
        "order": order,
    }


def test_parse_ref():
    assert refs.parse_ref("a.h5") == (refs.Path("a.h5"), None)
    assert refs.parse_ref("dir/a.h5:text") == (refs.Path("dir/a.h5"), "text")
    assert refs.parse_ref("a.h5:image") == (refs.Path("a.h5"), "image")
    with pytest.raises(UsageError):
        refs.parse_ref("a.h5:caption")
    with pytest.raises(UsageError):
        refs.parse_ref(":text")


def test_load_ref_sides(stores):
    image = refs.load_ref(str(stores["two"]))
    assert image.side == "image" and image.name == "two.h5:image"
    assert np.allclose(image.matrix, stores["X"], atol=1e-6)
    text = refs.load_ref(f"{stores['two']}:text")
    assert np.allclose(text.matrix, stores["T"], atol=1e-6)  # mean of unit caption vectors
    only = refs.load_ref(str(stores["text"]))
    assert only.side == "text" and only.matrix.shape == (20, 6)
    with pytest.raises(UsageError, match="no image embeddings"):
        refs.load_ref(f"{stores['text']}:image")
    with pytest.raises(StoreError):
        refs.load_ref(str(stores["two"].with_name("missing.h5")))


def test_align_refs_by_image_id(stores):
    ids, (A, B), names = refs.align_refs([str(stores["two"]), str(stores["text"])])
    assert names == ["two.h5:image", "text.h5:text"]
    rows = np.sort(stores["order"])  # the first REF's order, restricted to shared ids
    assert list(ids) == [f"img{i}" for i in rows]
    assert np.allclose(A, stores["X"][rows], atol=1e-6)
    position = {img: j for j, img in enumerate(stores["order"])}
    assert np.allclose(B, _unit(stores["S"])[[position[i] for i in rows]], atol=1e-6)
    with pytest.raises(StoreError, match="share 0 image id"):
        refs.align_refs([str(stores["two"]), str(stores["other"])])


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_cka_knn_match(cli, stores):
    two, text = stores["two"], stores["text"]
    doc = _json(cli("cka", f"{two}:image", f"{two}:text", str(text), "--json"))
    assert doc["names"] == ["two.h5:image", "two.h5:text", "text.h5:text"]
    assert doc["n"] == 20 and doc["dims"] == [8, 8, 6]
    M = np.asarray(doc["matrix"])
    assert np.allclose(np.diag(M), 1)
    ids, mats, _ = refs.align_refs([f"{two}:image", f"{two}:text", str(text)])
    assert M[0, 1] == pytest.approx(linear_cka(mats[0], mats[1]), abs=1e-7)
    assert M[1, 2] == pytest.approx(linear_cka(mats[1], mats[2]), abs=1e-7)
    X, T = refs.align_refs([f"{two}:image", f"{two}:text"])[1]
    doc = _json(cli("knn", f"{two}:image", f"{two}:text", "--k", "4", "--json"))
    assert (doc["k"], doc["n"]) == (4, 30)
    assert doc["mutual_knn"] == pytest.approx(mutual_knn(X, T, 4))
    match = ("match", f"{two}:image", f"{two}:image", "--base", "10", "--query", "12")
    doc = _json(cli(*match, "--restarts", "2", "--json"))
    assert (doc["n_base"], doc["n_query"], doc["accuracy"]) == (10, 12, 1.0)
    table = cli("cka", f"{two}:image", f"{two}:text", "--kernel", "rbf", "--unbiased")
    assert table.returncode == 0, table.stderr
    assert "rbf CKA, unbiased" in table.stdout and "two.h5:text" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("cka", "{d}/nope.h5", "{two}:text"), 1, "does not exist"),
        (("cka", "{two}:caption", "{two}:text"), 2, "unknown side"),
        (("knn", "{text}:image", "{two}"), 2, "no image embeddings"),
        (("match", "{two}", "{text}", "--base", "15", "--query", "10"), 2, "must fit"),
    ],
)
def test_cli_errors_are_one_line(cli, stores, args, code, words):
    paths = {"two": stores["two"], "text": stores["text"], "other": stores["other"]}
    paths["d"] = stores["two"].parent
    result = cli(*(a.format(**paths) for a in args))
    assert result.returncode == code
    assert result.stderr.startswith("mgap: error:") and words in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_on_real_convirt_embeddings(cli, convirt_dir, tmp_path):
    from mgap.store.build import store_from_arrays

    features = np.load(convirt_dir / "features_convirt.npy")
    path = store_from_arrays(
        tmp_path / "convirt.h5", image_embeddings=features[0], text_embeddings=features[1]
    )
    X, Y = features[0].astype(np.float64), _unit(features[1].astype(np.float64))
    doc = _json(cli("cka", f"{path}:image", f"{path}:text", "--json"))
    assert doc["n"] == 500 and doc["dims"] == [512, 512]
    assert doc["matrix"][0][1] == pytest.approx(linear_cka(X, Y), abs=1e-7)
    assert 0.05 < doc["matrix"][0][1] < 0.95  # trained towers: related, not identical
    assert doc["chance"][0][1] < doc["matrix"][0][1]
    doc = _json(cli("knn", f"{path}:image", f"{path}:text", "--json"))
    assert doc["mutual_knn"] == pytest.approx(mutual_knn(X, Y, 10))
    assert doc["mutual_knn"] > doc["chance"]
