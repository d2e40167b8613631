"""`mgap robustness`: per-setting values, changes from clean, groups, and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import check_schema

CATS = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture
def perturbed_store(make_store):
    rng = np.random.default_rng(5)
    n, d = 40, 10
    X = rng.normal(size=(n, d))
    Y = X + rng.normal(size=(n, d))
    primary = np.arange(n) % len(CATS)
    labels = np.zeros((n, len(CATS)), dtype=np.uint8)
    labels[np.arange(n), primary] = 1
    noisy = X + 2.0 * rng.normal(size=(n, d))
    path = make_store(
        "r.h5",
        X=X,
        Y=Y,
        category_names=CATS,
        supercategories=["s"] * len(CATS),
        primary=primary,
        labels=labels,
        prompts={"category": (CATS, rng.normal(size=(len(CATS), d)))},
        perturbed={"blur:1": X.copy(), "noise:0.1": noisy},
    )
    return path, X, Y, noisy, primary


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def test_settings_rows_values_and_changes_from_clean(perturbed_store, cli):
    path, X, Y, noisy, _ = perturbed_store
    r = cli("robustness", str(path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    check_schema("robustness", doc)
    clean, blur, noise = doc["settings"]
    assert [s["setting"] for s in doc["settings"]] == ["clean", "blur:1", "noise:0.1"]
    # an identical side changes nothing
    assert blur["clean_cosine"] == pytest.approx(1.0)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in blur["delta"].values())
    # the noisy side, transcribed: cosine to clean, L2M, pair similarity, error = 1 - top1
    # the store holds float32 rows
    xn, yn, pn = (_unit(A.astype(np.float32).astype(float)) for A in (X, Y, noisy))
    assert noise["clean_cosine"] == pytest.approx(np.mean(np.sum(xn * pn, 1)), abs=1e-9)
    assert noise["l2m"] == pytest.approx(np.linalg.norm(pn.mean(0) - yn.mean(0)), abs=1e-9)
    assert noise["mean_paired_cosine"] == pytest.approx(np.mean(np.sum(pn * yn, 1)), abs=1e-9)
    assert noise["error"] == pytest.approx(1 - noise["top1"])
    assert noise["delta"]["l2m"] == pytest.approx(noise["l2m"] - clean["l2m"])
    # the clean row agrees with the ungrouped commands
    gap = json.loads(cli("gap", str(path), "--json").stdout)
    ret = json.loads(cli("retrieval", str(path), "--json").stdout)
    zs = json.loads(cli("zeroshot", str(path), "--json").stdout)
    assert clean["l2m"] == pytest.approx(gap["l2m"]) and clean["rmg"] == pytest.approx(gap["rmg"])
    assert clean["i2t_R@1"] == pytest.approx(ret["i2t"]["R@1"])
    assert clean["t2i_R@1"] == pytest.approx(ret["t2i"]["R@1"])
    assert clean["top1"] == pytest.approx(zs["accuracy"])
    assert clean["top5"] == pytest.approx(zs["top5_accuracy"])
    first = json.loads(cli("robustness", str(path), "--captions", "first", "--json").stdout)
    gap_first = json.loads(cli("gap", str(path), "--captions", "first", "--json").stdout)
    assert first["settings"][0]["l2m"] == pytest.approx(gap_first["l2m"])
    # the table fits 80 columns
    table = cli("robustness", str(path), env={"COLUMNS": "80"})
    assert table.returncode == 0 and max(len(line) for line in table.stdout.splitlines()) <= 80


def test_groups_over_one_group_equal_the_settings_rows(perturbed_store, cli, tmp_path):
    path, *_ = perturbed_store
    csv = tmp_path / "one.csv"
    csv.write_text("id,all\n" + "".join(f"{i},yes\n" for i in range(40)))
    r = cli("robustness", str(path), "--groups", str(csv), "--groups", "category", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = doc["groups"]["rows"]
    for setting in doc["settings"]:
        (row,) = [g for g in rows if g["grouping"] == "all" and g["setting"] == setting["setting"]]
        for key in ("top1", "top5", "error", "l2m", "rmg", "clean_cosine", "i2t_R@1", "t2i_R@1"):
            assert row[key] == pytest.approx(setting[key], abs=1e-9), key
    cats = [g for g in rows if g["grouping"] == "category" and g["setting"] == "clean"]
    assert sorted(g["group"] for g in cats) == CATS and all(g["small"] for g in cats)
    summary = [s for s in doc["groups"]["summary"] if s["grouping"] == "category"]
    assert summary and all("worst" not in s and s["n_small"] == 6 for s in summary)


def test_a_store_without_perturbations_is_refused(make_store, cli):
    rng = np.random.default_rng(0)
    path = make_store("plain.h5", X=rng.normal(size=(5, 4)), Y=rng.normal(size=(5, 4)))
    r = cli("robustness", str(path))
    assert r.returncode == 1 and "--perturb" in r.stderr and "Traceback" not in r.stderr


def test_verify_checks_every_perturbed_side(make_store, cli):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    broken = X.copy()
    broken[2] = np.nan
    path = make_store("v.h5", X=X, Y=Y, perturbed={"blur:3": X + 1, "noise:0.05": broken})
    r = cli("verify", str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "NaN" in x]
    assert "noise:0.05" in line and "1 " in line
    assert "blur:3" not in r.stderr


def test_export_writes_every_perturbed_side(perturbed_store, cli, tmp_path):
    path, X, *_ = perturbed_store
    out = tmp_path / "exported"
    r = cli("export", str(path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    blur = np.load(out / "image_blur_1_embeddings.npy")
    noise = np.load(out / "image_noise_0.1_embeddings.npy")
    assert np.array_equal(blur, np.load(out / "image_embeddings.npy"))
    assert noise.shape == X.shape and not np.allclose(noise, blur)
