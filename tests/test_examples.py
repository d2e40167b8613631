"""`mgap examples` against a brute force written here: cosines, ranks with ties, top-k, centroid.

The real case is tiny COCO embedded by a random open_clip model; ties (identical duplicate
captions) are pinned on a small store built from arrays, counted as `mgap retrieval` counts
them: expected rank = above + 1 + tied / (right tied + 1).
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from mgap.engine.studies.examples import examples_report
from mgap.store import open_store

MODEL = "open_clip:ViT-S-32@random"
TOL = 1e-6


@pytest.fixture(scope="module")
def coco_store(tmp_path_factory):
    """Tiny COCO through a random open_clip model, extracted once for this module."""
    from conftest import TINY_COCO, _need, run_cli

    root = _need(TINY_COCO)
    out = tmp_path_factory.mktemp("examples")
    done = run_cli(
        "extract", "--model", MODEL, "--dataset", "coco", "--data-root", str(root),
        "--split", "train2017", "--store-dir", str(out), "--json", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["stores"][0]["store"]


def _unit(A):
    A = np.asarray(A, dtype=np.float64)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def brute_force_images(X, Y, index, k):
    """Per image: mean true cosine, expected rank of its best caption, top-k, centroid d."""
    Xn, Yn = _unit(X), _unit(Y)
    S = Xn @ Yn.T
    out = []
    for i in range(len(Xn)):
        true = np.flatnonzero(index == i)
        if true.size == 0:
            out.append(None)
            continue
        best = S[i, true].max()
        wrong = np.ones(len(Yn), bool)
        wrong[true] = False
        above = int((S[i, wrong] > best + TOL).sum())
        tied = int((np.abs(S[i, wrong] - best) <= TOL).sum())
        right_tied = int((S[i, true] >= best - TOL).sum())
        top = sorted(range(len(Yn)), key=lambda j: (-S[i, j], j))[:k]
        out.append(
            {
                "pair": S[i, true].mean(),
                "rank": above + 1 + tied / (right_tied + 1),
                "above": above,
                "tied": tied,
                "top": top,
                "centroid": np.linalg.norm(Xn[i] - Yn.mean(0)),
                "true": {int(j): S[i, j] for j in true},
            }
        )
    return out


def _check(doc, expected, index):
    for ex in doc["examples"]:
        want = expected[ex["row"]]
        assert ex["pair_cosine"] == pytest.approx(want["pair"], abs=1e-5)
        assert ex["rank"] == pytest.approx(want["rank"])
        assert (ex["above"], ex["tied"]) == (want["above"], want["tied"])
        assert ex["centroid_distance"] == pytest.approx(want["centroid"], abs=1e-5)
        assert {m["row"]: m["cosine"] for m in ex["true"]} == pytest.approx(want["true"], abs=1e-5)
        top = want["top"][: doc["k"]]
        assert [m["row"] for m in ex["retrieved"]] == top
        assert [m["true"] for m in ex["retrieved"]] == [index[j] == ex["row"] for j in top]


def test_examples_equal_brute_force_on_tiny_coco(coco_store):
    store = open_store(coco_store)
    X, Y = store.image_embeddings(), store.text_embeddings()
    index = store.text_image_index
    expected = brute_force_images(X, Y, index, 5)
    name = store.category_names[
        int(np.bincount(store.primary_category[store.primary_category >= 0]).argmax())
    ]
    in_cat = np.flatnonzero(store.primary_category == store.category_names.index(name))
    for sort, key in (("pair", "pair"), ("rank", "rank"), ("centroid", "centroid")):
        doc = examples_report(store, category=name, sort=sort, n=4, k=5).to_json()
        # centroid's pass over the candidates is the one rank's left in the cache
        counted = "cached" if sort == "centroid" else "computed"
        assert doc["n_candidates"] == in_cat.size and doc["ranks"] == counted
        _check(doc, expected, index)
        values = {i: expected[i][key] for i in in_cat}
        sign = 1 if key == "pair" else -1
        worst = sorted(in_cat, key=lambda i: (sign * values[i], i))[:4]
        if sort == "pair":
            assert [ex["row"] for ex in doc["examples"]] == worst
        else:  # equal ranks may order either way: compare the values
            got = [expected[ex["row"]][key] for ex in doc["examples"]]
            assert got == pytest.approx([values[i] for i in worst])
    best = examples_report(store, n=3, worst=False, k=2).to_json()
    assert [ex["row"] for ex in best["examples"]] == sorted(
        range(len(X)), key=lambda i: (-expected[i]["pair"], i)
    )[:3]
    _check(best, expected, index)


def test_examples_reuse_the_ranks_mgap_retrieval_cached(coco_store, cli):
    before = examples_report(open_store(coco_store), sort="rank", n=50, k=0).to_json()
    assert cli("retrieval", coco_store, "--json").returncode == 0
    after = examples_report(open_store(coco_store), sort="rank", n=50, k=0).to_json()
    assert after["ranks"] == "cached" and before["ranks"] == "computed"
    bare = examples_report(
        open_store(coco_store), sort="rank", n=50, k=0, with_centroid=False
    ).to_json()
    assert bare["examples"] == [{**e, "centroid_distance": None} for e in after["examples"]]
    assert [(e["row"], e["rank"]) for e in after["examples"]] == [
        (e["row"], e["rank"]) for e in before["examples"]
    ]


def test_text_side_equals_brute_force(coco_store):
    store = open_store(coco_store)
    Xn, Yn = _unit(store.image_embeddings()), _unit(store.text_embeddings())
    index = store.text_image_index
    doc = examples_report(store, side="text", sort="rank", n=5, k=3).to_json()
    S = Yn @ Xn.T
    ranks = []
    for c in range(len(Yn)):
        own = S[c, index[c]]
        others = np.delete(S[c], index[c])
        ranks.append((others > own + TOL).sum() + 1 + (np.abs(others - own) <= TOL).sum() / 2)
    assert [e["rank"] for e in doc["examples"]] == pytest.approx(sorted(ranks, reverse=True)[:5])
    for e in doc["examples"]:
        c = e["row"]
        assert e["pair_cosine"] == pytest.approx(S[c, index[c]], abs=1e-5)
        assert [m["row"] for m in e["retrieved"]] == sorted(
            range(len(Xn)), key=lambda j: (-S[c, j], j)
        )[:3]
        assert e["centroid_distance"] == pytest.approx(np.linalg.norm(Yn[c] - Xn.mean(0)), abs=1e-5)


def test_tied_duplicate_captions_count_as_in_retrieval(make_store):
    """Image 0's true caption has two identical copies among other images' captions."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 4))
    Y = X + rng.normal(size=(6, 4)) * 0.3
    Y = np.vstack([Y, Y[0], Y[0], X[1] * 5])  # captions 6, 7 copy caption 0; 8 is image 1's
    index = np.array([0, 1, 2, 3, 4, 5, 2, 3, 1])
    path = make_store(X=X, Y=Y, caption_image_row=index)
    doc = examples_report(open_store(path), n=6, k=3).to_json()
    expected = brute_force_images(X, Y, index, 3)
    _check(doc, expected, index)
    zero = next(e for e in doc["examples"] if e["row"] == 0)
    assert zero["tied"] >= 2 and zero["rank"] == pytest.approx(
        expected[0]["above"] + 1 + zero["tied"] / 2
    )


def test_refusals_are_one_line(coco_store, make_store, cli):
    done = cli("examples", coco_store, "--category", "persn")
    assert done.returncode == 2 and "nearest: person" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    image_only = make_store("img.h5", X=np.eye(4), Y=None)
    done = cli("examples", str(image_only), "--side", "text")
    assert done.returncode == 1 and "image-only" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    for args in (
        ["--worst", "0"],
        ["--show", "9", "--worst", "2"],
        ["--worst", "2", "--best", "2"],
        ["--show", "1", "--json"],
    ):
        done = cli("examples", coco_store, *args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, args


def test_show_draws_half_blocks_or_says_the_files_are_gone(coco_store, tmp_path, cli):
    done = cli("examples", coco_store, "--worst", "1", "--show", "1")
    assert done.returncode == 0 and "▀" in done.stdout
    done = cli("examples", coco_store, "--worst", "1", "--show", "1", "--ascii")
    assert done.returncode == 0 and "▀" not in done.stdout
    moved = tmp_path / "moved.h5"
    shutil.copyfile(coco_store, moved)
    with h5py.File(moved, "r+") as f:
        f.attrs["data_root"] = str(tmp_path / "gone")
    done = cli("examples", str(moved), "--worst", "1", "--show", "1")
    assert done.returncode == 0
    assert done.stdout.strip().splitlines()[-1].startswith("image not reachable:")


def _scan_entries(store_path):
    """{cache group name: its params} of the examples scans in the store's sidecar cache."""
    with h5py.File(f"{store_path}.cache.h5", "r") as f:
        return {
            name: json.loads(f[name].attrs["params"])
            for name in f
            if name.startswith("examples-scan-")
        }


def test_a_second_report_reads_the_cached_scan(coco_store, tmp_path, monkeypatch):
    import mgap.engine.studies.examples as study

    path = tmp_path / "copy.h5"
    shutil.copy(coco_store, path)
    store = open_store(path)
    X, Y, index = store.image_embeddings(), store.text_embeddings(), store.text_image_index
    expected = brute_force_images(X, Y, index, 5)
    first = examples_report(store, sort="pair", n=6, k=0, fetch_k=5).to_json()
    assert first["ranks"] == "computed"
    entries = _scan_entries(path)
    assert [(p["side"], p["n"]) for p in entries.values()] == [("image", 6)]

    def no_pass(*args, **kwargs):
        raise AssertionError("the cached scan was not used")

    monkeypatch.setattr(study.ex, "scan_gallery", no_pass)
    again = examples_report(open_store(path), sort="pair", n=6, k=0).to_json()
    assert again["ranks"] == "cached"
    assert again["examples"] == first["examples"]
    with_top = examples_report(open_store(path), sort="pair", n=6, k=5).to_json()
    _check(with_top, expected, index)  # the top-5 the first pass kept (fetch_k)
    assert [e["row"] for e in with_top["examples"]] == [e["row"] for e in first["examples"]]
    with pytest.raises(AssertionError, match="not used"):  # more than the entry holds
        examples_report(open_store(path), sort="pair", n=6, k=7)


def test_a_stale_cached_scan_is_ignored(coco_store, tmp_path):
    path = tmp_path / "copy.h5"
    shutil.copy(coco_store, path)
    first = examples_report(open_store(path), sort="pair", n=5, k=3).to_json()
    (name,) = _scan_entries(path)
    with h5py.File(f"{path}.cache.h5", "r+") as f:  # made from other rows
        f[name]["above"][...] = f[name]["above"][...] + 1000
        f[name].attrs["stamp"] = "another store's content"
    again = examples_report(open_store(path), sort="pair", n=5, k=3).to_json()
    assert again["ranks"] == "computed" and again["examples"] == first["examples"]
    with h5py.File(f"{path}.cache.h5", "r") as f:  # and written anew with this store's stamp
        assert f[name].attrs["stamp"] != "another store's content"
    cached = examples_report(open_store(path), sort="pair", n=5, k=3).to_json()
    assert cached["ranks"] == "cached" and cached["examples"] == first["examples"]
