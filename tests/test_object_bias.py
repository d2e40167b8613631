"""Object bias: class separations against a plain pairwise loop, closed cases, the store report."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_schema

from mgap.core.errors import StoreError
from mgap.engine.measures.object_bias import class_separation, object_bias
from mgap.engine.studies.object_bias import object_bias_report
from mgap.store import open_store


def _plain_separation(X, labels):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    within, across = [], []
    for i in range(len(X)):
        for j in range(len(X)):
            if i != j:
                (within if labels[i] == labels[j] else across).append(Xn[i] @ Xn[j])
    return np.mean(within), np.mean(across)


def test_class_separation_matches_a_pairwise_loop(rng):
    X = rng.normal(size=(40, 7))
    labels = rng.integers(0, 4, size=40)
    got = class_separation(X, labels)
    within, across = _plain_separation(X, labels)
    assert got["within"] == pytest.approx(within, abs=1e-12)
    assert got["across"] == pytest.approx(across, abs=1e-12)
    assert got["separation"] == pytest.approx(within - across, abs=1e-12)
    assert got["n"] == 40 and got["n_classes"] == 4


def test_unlabelled_rows_are_left_out(rng):
    X = rng.normal(size=(12, 3))
    labels = np.array(["a", "b", ""] * 4)
    got = class_separation(X, labels)
    keep = labels != ""
    within, across = _plain_separation(X[keep], labels[keep])
    assert got["n"] == 8 and got["separation"] == pytest.approx(within - across, abs=1e-12)


def test_space_organised_by_object_has_positive_bias():
    # one axis per object, attribute carried by a small orthogonal component: objects cluster
    objects = np.repeat(np.arange(3), 8)
    colour = np.tile(np.arange(2), 12)
    X = np.zeros((24, 5))
    X[np.arange(24), objects] = 1.0
    X[np.arange(24), 3 + colour] = 0.1
    doc = object_bias(X, objects, {"colour": colour})
    within, across = _plain_separation(X, objects)
    assert doc["object"]["within"] == pytest.approx(within, abs=1e-12)
    assert doc["object"]["across"] == pytest.approx(across, abs=1e-12)
    assert doc["object_bias"] > 0.9
    swapped = object_bias(X, colour, {"object": objects})
    assert swapped["object_bias"] == pytest.approx(-doc["object_bias"])


def test_report_on_a_store(make_store, rng):
    n = 30
    objects = np.arange(n) % 3
    colours = np.array(["red", "blue"])[np.arange(n) % 2]
    X = rng.normal(size=(n, 6))
    Y = rng.normal(size=(2 * n, 6))
    rows = np.repeat(np.arange(n), 2)
    path = make_store(
        X=X,
        Y=Y,
        caption_image_row=rows,
        category_names=["a", "b", "c"],
        primary=objects,
        labels=np.eye(3, dtype=np.uint8)[objects],
        attributes={"colour": list(colours)},
        prompts={"category": (["a", "b", "c"], rng.normal(size=(3, 6)))},
    )
    doc = object_bias_report(open_store(path)).to_json()
    assert doc["attribute_keys"] == ["colour"]
    expected = object_bias(X, objects, {"colour": colours})
    assert doc["image"]["object_bias"] == pytest.approx(expected["object_bias"], abs=1e-6)
    text = object_bias(Y, objects[rows], {"colour": colours[rows]})
    assert doc["text"]["object_bias"] == pytest.approx(text["object_bias"], abs=1e-6)
    assert 0.0 <= doc["zero_shot"]["object"] <= 1.0
    assert doc["zero_shot"]["colour"] is None  # no colour prompts in this store


def test_store_without_attributes_is_a_clear_error(make_store, rng):
    path = make_store(
        X=rng.normal(size=(6, 3)),
        Y=rng.normal(size=(6, 3)),
        category_names=["a", "b"],
        primary=np.arange(6) % 2,
        labels=np.eye(2, dtype=np.uint8)[np.arange(6) % 2],
    )
    with pytest.raises(StoreError, match="attributes"):
        object_bias_report(open_store(path)).to_json()


def test_cli_object_bias_json_and_error(cli, make_store, rng, tmp_path):
    objects = np.arange(12) % 3
    path = make_store(
        X=rng.normal(size=(12, 4)),
        Y=rng.normal(size=(12, 4)),
        category_names=["a", "b", "c"],
        primary=objects,
        labels=np.eye(3, dtype=np.uint8)[objects],
        attributes={"size": ["small", "large"] * 6},
    )
    result = cli("object-bias", str(path), "--json")
    assert result.returncode == 0, result.stderr
    import json

    doc = json.loads(result.stdout)
    check_schema("object-bias", doc)
    assert set(doc) >= {"image", "text", "zero_shot", "attribute_keys"}
    missing = cli("object-bias", str(tmp_path / "nope.h5"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("mgap: error:") and "Traceback" not in missing.stderr
