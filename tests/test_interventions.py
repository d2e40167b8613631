"""Interventions (`mgap experiment center` and the registry): closed forms written out in
numpy, a store whose whole gap is a constant offset, per-group deltas, and a new
intervention added as one function."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures.experiments import before_after, measure
from mgap.engine.measures.interventions import (
    INTERVENTIONS,
    Rows,
    center_rows,
    register,
    unit,
)


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _r1_i2t(Xn, Yn, index):
    """Brute force: the share of images whose best caption is one of their own."""
    return float(np.mean(index[np.argmax(Xn @ Yn.T, axis=1)] == np.arange(Xn.shape[0])))


def _offset_pairs(rng, half=20, d=8, per=2):
    """Images (A + a)/R and captions (B + b)/R' with equal-norm rows: A, B have exactly zero
    mean (antipodal halves) and live in dims 2.., the offsets a, b in dims 0 and 1."""
    Q = _unit(rng.standard_normal((half, d - 2)))
    A = np.vstack([Q, -Q])
    n = 2 * half
    index = np.repeat(np.arange(n), per)
    noise = 0.3 * rng.standard_normal((half * per, d - 2))
    Bq = _unit(Q[np.repeat(np.arange(half), per)] + noise)
    B = np.vstack([Bq, -Bq])  # captions of image i + half are those of image i, negated
    index = np.concatenate(
        [np.repeat(np.arange(half), per), half + np.repeat(np.arange(half), per)]
    )
    a, b = np.zeros(d), np.zeros(d)
    a[0], b[1] = 1.5, -2.0
    pad = np.zeros((1, 2))
    X = np.hstack([np.repeat(pad, n, axis=0), A]) + a
    Y = np.hstack([np.repeat(pad, B.shape[0], axis=0), B]) + b
    return X, Y, index, A, B


def test_centring_zeroes_both_means_and_l2m_follows_the_formula(rng):
    X = rng.standard_normal((50, 6)) + 2.0 * np.eye(6)[0]
    index = np.arange(100) % 50
    Y = X[index] + rng.standard_normal((100, 6)) - 2.0 * np.eye(6)[1]
    Xn, Yn = _unit(X), _unit(Y)
    Xc, Yc = Xn - Xn.mean(axis=0), Yn - Yn.mean(axis=0)
    np.testing.assert_allclose(Xc.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(Yc.mean(axis=0), 0.0, atol=1e-15)
    expected = np.linalg.norm(_unit(Xc).mean(axis=0) - _unit(Yc).mean(axis=0))
    before = np.linalg.norm(Xn.mean(axis=0) - Yn.mean(axis=0))
    rows = center_rows(unit(X, Y), None)
    np.testing.assert_allclose(rows.images, _unit(Xc), atol=1e-12)
    after = measure(rows, index)
    assert after["l2m"] == pytest.approx(expected, rel=1e-9)
    assert measure(unit(X, Y), index)["l2m"] == pytest.approx(before, rel=1e-9)
    assert after["l2m"] < 0.25 * before


def test_a_constant_offset_is_removed_and_r1_is_the_offset_free_one(rng):
    X, Y, index, A, B = _offset_pairs(rng)
    Rx, Ry = np.sqrt(1.0 + 1.5**2), np.sqrt(1.0 + 2.0**2)
    _, doc = before_after(INTERVENTIONS["center"], unit(X, Y), index)
    expected_before = np.hypot(1.5 / Rx, 2.0 / Ry)  # the offsets are the whole gap
    assert doc["before"]["l2m"] == pytest.approx(expected_before, rel=1e-9)
    assert doc["after"]["l2m"] == pytest.approx(0.0, abs=1e-9)
    assert doc["after"]["i2t"]["R@1"] == pytest.approx(_r1_i2t(_unit(A), _unit(B), index))
    assert doc["delta"]["l2m"] == pytest.approx(-expected_before, rel=1e-9)


def test_center_cli_groups_and_zero_shot(rng, make_store, cli):
    X, Y, index, _, _ = _offset_pairs(rng)
    n, d = X.shape
    colour = np.where(np.arange(n) % 3 == 0, "red", "blue")
    labels = np.zeros((n, 2), dtype=bool)
    labels[np.arange(n), np.arange(n) % 2] = True
    prompts = rng.standard_normal((2, d)) + np.eye(d)[1] * -2.0
    path = make_store(
        X=X, Y=Y, caption_image_row=index, attributes={"colour": list(colour)},
        category_names=["even", "odd"], labels=labels, prompts={"category": (["even", "odd"], prompts)},
    )  # fmt: skip
    done = cli("experiment", "center", str(path), "--groups", "colour", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["intervention"] == "center" and doc["n_images"] == n
    truth = np.arange(n) % 2
    Pn = _unit(prompts)
    top1_before = np.mean(np.argmax(_unit(X) @ Pn.T, axis=1) == truth)
    assert doc["before"]["zeroshot_top1"] == pytest.approx(top1_before)
    Xc = _unit(_unit(X) - _unit(X).mean(axis=0))
    Pc = _unit(Pn - _unit(Y).mean(axis=0))
    top1_after = np.mean(np.argmax(Xc @ Pc.T, axis=1) == truth)
    assert doc["after"]["zeroshot_top1"] == pytest.approx(top1_after)
    groups = {g["group"]: g for g in doc["groups"]}
    assert set(groups) == {"red", "blue"} and groups["red"]["n"] == int((colour == "red").sum())
    for name, group in groups.items():
        mask = colour == name
        captions = mask[index]
        Xg, Yg = _unit(X)[mask], _unit(Y)[captions]
        l2m = np.linalg.norm(Xg.mean(axis=0) - Yg.mean(axis=0))
        assert group["before"]["l2m"] == pytest.approx(l2m, rel=1e-6)
        for key in ("l2m", "rmg", "mean_paired_cosine"):
            change = group["after"][key] - group["before"][key]
            assert group["delta"][key] == pytest.approx(change, abs=1e-12)
        change = group["after"]["i2t"]["R@1"] - group["before"]["i2t"]["R@1"]
        assert group["delta"]["i2t_r1"] == pytest.approx(change, abs=1e-12)
    table = cli("experiment", "center", str(path), "--groups", "colour")
    assert table.returncode == 0 and "colour=red" in table.stdout and "zero-shot" in table.stdout


def test_a_new_intervention_is_one_function(rng, make_store):
    from mgap.engine.studies.experiments import intervention_report
    from mgap.store import open_store

    @register("identity", "leave every row as it is")
    def identity(rows: Rows, _param) -> Rows:
        return rows

    try:
        X = rng.standard_normal((30, 5))
        Y = X + 0.5 * rng.standard_normal((30, 5))
        colour = ["a" if i < 12 else "b" for i in range(30)]
        path = make_store(X=X, Y=Y, attributes={"colour": colour})
        from mgap.engine.studies.groupings import load_groupings

        store = open_store(path)
        groupings, _ = load_groupings(store, ["colour"])
        report = intervention_report(store, "identity", groupings=groupings).to_json()
    finally:
        INTERVENTIONS.pop("identity")
    assert report["intervention"] == "identity"
    assert all(v == 0.0 for v in report["delta"].values() if v is not None)
    assert report["delta"]["zeroshot_top1"] is None  # no prompts in this store
    assert [g["group"] for g in report["groups"]] == ["a", "b"]
    for group in report["groups"]:
        assert all(v == 0.0 for v in group["delta"].values() if v is not None)
    assert report["before"] == report["after"]
