"""`--groups` on gap, retrieval and zeroshot: closed forms, the bootstrap, coverage lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures.additive import bootstrap_weights, gap_additive

CATS = ["cat", "dog", "car"]
SUPERS = ["animal", "animal", "vehicle"]


@pytest.fixture
def labelled_store(make_store):
    rng = np.random.default_rng(11)
    n, d = 60, 12
    X = rng.normal(size=(n, d))
    rows = np.concatenate([np.arange(n), np.arange(n)[::2]])  # 1 or 2 captions per image
    Y = X[rows] + 1.5 * rng.normal(size=(rows.size, d)) + 0.8
    primary = np.repeat([0, 1, 2], [30, 22, 8])
    labels = np.zeros((n, 3), dtype=np.uint8)
    labels[np.arange(n), primary] = 1
    labels[::7, 2] = 1  # some images show two categories
    prompts = {"category": (CATS, X[[0, 30, 52]] + rng.normal(size=(3, d)))}
    path = make_store(
        "g.h5",
        X=X,
        Y=Y,
        caption_image_row=rows,
        category_names=CATS,
        supercategories=SUPERS,
        primary=primary,
        labels=labels,
        prompts=prompts,
    )
    return path, X, Y, rows, primary


def _json(cli, *args):
    r = cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def test_one_group_over_everything_equals_the_overall_metrics(labelled_store, cli, tmp_path):
    path, *_ = labelled_store
    csv = tmp_path / "all.csv"
    csv.write_text("image_id,everyone\n" + "".join(f"{i},all\n" for i in range(60)))
    gap, err = _json(cli, "gap", str(path), "--groups", str(csv), "--bootstrap", "50")
    assert err.strip() == ""  # every image has a row: no coverage line
    (row,) = gap["groups"]["rows"]
    assert (row["grouping"], row["group"], row["n"]) == ("everyone", "all", 60)
    for key in ("l2m", "l2i", "mean_paired_cosine", "intra_image_cosine", "rmg", "n_texts"):
        assert row[key] == pytest.approx(gap[key], abs=1e-9), key
    lo, hi = row["ci"]["l2m"]
    assert lo < hi
    ret, _ = _json(cli, "retrieval", str(path), "--groups", str(csv), "--bootstrap", "0")
    (row,) = ret["groups"]["rows"]
    for side in ("i2t", "t2i"):
        for key in ("R@1", "R@5", "R@10", "median_rank", "mean_rank", "n"):
            assert row[side][key] == pytest.approx(ret[side][key], abs=1e-12), (side, key)
    assert row["ci"] == {}
    zs, _ = _json(cli, "zeroshot", str(path), "--groups", str(csv))
    (row,) = zs["groups"]["rows"]
    for key in ("accuracy", "top5_accuracy", "mean_class_accuracy", "n"):
        assert row[key] == pytest.approx(zs[key], abs=1e-12), key


def test_bootstrap_replicate_equals_the_metrics_of_the_duplicated_rows():
    rng = np.random.default_rng(2)
    n, d = 15, 6
    X = rng.normal(size=(n, d))
    index = np.concatenate([np.arange(n), [0, 3, 3]])
    Y = rng.normal(size=(index.size, d))
    (W,) = list(bootstrap_weights(n, 1, seed=4))
    assert W.sum() == n
    got = gap_additive(X, Y, index).evaluate(W[None, 0])
    # the replicate spelled out: each image repeated W_i times, with its captions
    draws = np.repeat(np.arange(n), W[0].astype(int))
    Xs = X[draws]
    cap = [j for i in draws for j in np.flatnonzero(index == i)]
    Ys = Y[cap]
    xn = Xs / np.linalg.norm(Xs, axis=1, keepdims=True)
    yn = Ys / np.linalg.norm(Ys, axis=1, keepdims=True)
    pair_x = np.concatenate(
        [np.repeat(xn[k : k + 1], (index == i).sum(), 0) for k, i in enumerate(draws)]
    )
    l2m = np.linalg.norm(xn.mean(0) - yn.mean(0))
    cos = np.mean(np.sum(pair_x * yn, 1))
    gx, gy = xn @ xn.T, yn @ yn.T
    intra_x = (gx.sum() - np.trace(gx)) / (len(xn) * (len(xn) - 1))
    intra_y = (gy.sum() - np.trace(gy)) / (len(yn) * (len(yn) - 1))
    m = (1 - cos) / 2
    rmg = m / (m + ((1 - intra_x) / 2 + (1 - intra_y) / 2) / 2)
    assert got["l2m"][0] == pytest.approx(l2m, abs=1e-12)
    assert got["mean_paired_cosine"][0] == pytest.approx(cos, abs=1e-12)
    assert got["intra_image_cosine"][0] == pytest.approx(intra_x, abs=1e-12)
    assert got["intra_text_cosine"][0] == pytest.approx(intra_y, abs=1e-12)
    assert got["rmg"][0] == pytest.approx(rmg, abs=1e-12)
    assert got["l2i"][0] == pytest.approx(np.linalg.norm(pair_x - yn, axis=1).mean(), abs=1e-12)


def test_builtin_categories_small_groups_and_the_worst_best_summary(labelled_store, cli):
    path, X, Y, rows, primary = labelled_store
    doc, _ = _json(
        cli,
        "gap",
        str(path),
        "--groups",
        "category",
        "--groups",
        "supercategory",
        "--bootstrap",
        "20",
    )
    groups = doc["groups"]
    by = {(r["grouping"], r["group"]): r for r in groups["rows"]}
    assert {k: r["n"] for k, r in by.items()} == {
        ("category", "car"): 8,
        ("category", "cat"): 30,
        ("category", "dog"): 22,
        ("supercategory", "animal"): 52,
        ("supercategory", "vehicle"): 8,
    }
    assert by[("category", "car")]["small"] and not by[("category", "dog")]["small"]
    # the cat group's L2M, transcribed: ||mean x̂ - mean ŷ|| over its images and their captions
    mask = primary == 0
    xn = X[mask] / np.linalg.norm(X[mask], axis=1, keepdims=True)
    ys = Y[mask[rows]]
    yn = ys / np.linalg.norm(ys, axis=1, keepdims=True)
    assert by[("category", "cat")]["l2m"] == pytest.approx(
        np.linalg.norm(xn.mean(0) - yn.mean(0)), abs=1e-9
    )
    (summary,) = [
        s for s in groups["summary"] if s["grouping"] == "category" and s["metric"] == "l2m"
    ]
    ranked = {g: by[("category", g)]["l2m"] for g in ("cat", "dog")}  # car is small
    worst, best = max(ranked, key=ranked.get), min(ranked, key=ranked.get)
    assert summary["worst"]["group"] == worst and summary["best"]["group"] == best
    assert summary["n_ranked"] == 2 and summary["n_small"] == 1
    assert summary["difference"] == pytest.approx(ranked[worst] - ranked[best])
    assert summary["ratio"] == pytest.approx(ranked[worst] / ranked[best])


def test_csv_by_file_name_with_missing_and_unknown_rows(labelled_store, cli, tmp_path):
    path, *_ = labelled_store
    csv = tmp_path / "meta.csv"
    lines = ["file_name,site,light"] + [f"{i},{'a' if i % 2 else 'b'},day" for i in range(50)]
    lines.append("no-such-image,a,night")
    csv.write_text("\n".join(lines) + "\n")
    doc, err = _json(cli, "zeroshot", str(path), "--groups", str(csv), "--bootstrap", "0")
    assert err.count("\n") == 1  # one line
    assert "10 of 60 images have no row" in err and "1 rows match no image" in err
    rows = doc["groups"]["rows"]
    assert {(r["grouping"], r["group"]) for r in rows} == {
        ("site", "a"),
        ("site", "b"),
        ("light", "day"),
    }
    assert doc["groups"]["missing"][0]["images_without_row"] == 10


def test_bad_groups_values_are_one_line_usage_errors(labelled_store, cli, tmp_path):
    path, *_ = labelled_store
    r = cli("gap", str(path), "--groups", "nonsense")
    assert r.returncode == 2 and "CSV" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("id\n")
    r = cli("gap", str(path), "--groups", str(empty))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
