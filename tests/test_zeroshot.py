"""Zero-shot accuracy: single- and multi-label ground truth, store prompt sets, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.core.errors import StoreError
from mgap.engine.measures.zeroshot import zero_shot
from mgap.engine.studies.zeroshot import zero_shot_report
from mgap.store import open_store

NAMES = ["cat", "dog", "car"]


def test_single_label_accuracy_by_hand():
    classes = np.eye(3)
    images = np.array([[2.0, 0.1, 0], [0, 1, 0.2], [0.9, 0, 1.0], [0, 3, 0], [1, 1, 5]])
    truth = np.array([0, 1, 0, 1, -1])  # image 2 is nearest "car": wrong; image 4 unlabelled
    doc = zero_shot(images, classes, truth, NAMES)
    assert doc["accuracy"] == pytest.approx(3 / 4)
    assert doc["n"] == 4 and not doc["multi_label"]
    per = {r["name"]: r for r in doc["per_class"]}
    assert per["cat"]["accuracy"] == 0.5 and per["dog"]["accuracy"] == 1.0
    assert per["car"]["accuracy"] is None and per["car"]["n_predicted"] == 1
    assert doc["mean_class_accuracy"] == pytest.approx(0.75)


def test_multi_label_is_top1_in_labels():
    classes = np.eye(3)
    images = np.array([[1.0, 0.5, 0], [0, 0.2, 1.0], [0, 1.0, 0.9]])
    truth = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=bool)
    doc = zero_shot(images, classes, truth, NAMES)
    assert doc["accuracy"] == pytest.approx(2 / 3) and doc["multi_label"]
    per = {r["name"]: r for r in doc["per_class"]}
    assert per["cat"]["accuracy"] == 0.5  # images 0 (hit) and 1 (predicted car: miss)
    assert per["car"]["accuracy"] == 1.0  # image 2 predicted dog, which it also has


def test_matches_plain_argmax_and_is_scale_invariant(rng):
    classes = rng.standard_normal((5, 8))
    truth = rng.integers(0, 5, 200)
    images = classes[truth] + 1.5 * rng.standard_normal((200, 8))
    unit = classes / np.linalg.norm(classes, axis=1, keepdims=True)
    expected = np.mean(np.argmax(images @ unit.T, axis=1) == truth)
    doc = zero_shot(images * rng.uniform(0.1, 5, (200, 1)), classes * 7.0, truth, list("abcde"))
    assert doc["accuracy"] == pytest.approx(expected)
    assert 0.3 < expected < 1.0


def test_bad_shapes(rng):
    with pytest.raises(ValueError, match="class embeddings"):
        zero_shot(np.ones((2, 3)), np.ones((2, 3)), np.zeros(2, int), NAMES)
    with pytest.raises(ValueError, match="out of range"):
        zero_shot(np.ones((2, 3)), np.eye(3), np.array([0, 3]), NAMES)


def _store(make_store, rng, prompts=True):
    classes = np.eye(3, 6)
    primary = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    X = classes[primary] + 0.3 * rng.standard_normal((8, 6))
    labels = np.zeros((8, 3), dtype=bool)
    labels[np.arange(8), primary] = True
    labels[0, 2] = True
    return (
        make_store(
            X=X,
            Y=X + 0.1,
            category_names=NAMES,
            supercategories=["animal", "animal", "vehicle"],
            primary=primary,
            labels=labels,
            attributes={"colour": ["red", "blue", "red", "blue", "red", "blue", "red", "green"]},
            prompts=(
                {
                    "category": (["car", "cat", "dog"], classes[[2, 0, 1]]),
                    "colour": (["red", "blue"], np.eye(2, 6, 3)),
                }
                if prompts
                else None
            ),
        ),
        X,
        labels,
    )


def test_store_report_maps_prompt_names_to_categories(rng, make_store):
    path, X, labels = _store(make_store, rng)
    doc = zero_shot_report(open_store(path)).to_json()
    expected = zero_shot(X, np.eye(3, 6), labels, NAMES)
    assert doc["accuracy"] == pytest.approx(expected["accuracy"])
    assert [r["name"] for r in doc["per_class"]] == ["car", "cat", "dog"]
    colour = zero_shot_report(open_store(path), "colour").to_json()
    assert colour["n"] == 7  # "green" has no prompt: left out
    assert colour["label_set"] == "colour"


def test_store_without_prompts_is_a_clear_error(rng, make_store, cli):
    path, _, _ = _store(make_store, rng, prompts=False)
    with pytest.raises(StoreError, match="no prompt embeddings for 'category'"):
        zero_shot_report(open_store(path)).to_json()
    failed = cli("zeroshot", str(path))
    assert failed.returncode == 1
    assert failed.stderr.startswith("mgap: error: s.h5 has no prompt embeddings")


def test_cli_zeroshot(rng, make_store, cli):
    path, _, _ = _store(make_store, rng)
    done = cli("zeroshot", str(path), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert {"accuracy", "mean_class_accuracy", "per_class", "n"} <= set(doc)
    people = cli("zeroshot", str(path), "--labels", "colour")
    assert people.returncode == 0 and "red" in people.stdout


# ---- CLIP_benchmark's multi-label and per-class metrics ---------------------------------------
def _clip_benchmark_ap(scores, targets):
    """clip_benchmark/metrics/zeroshot_classification.py, average_precision_per_class, in
    numpy. torch.sort(descending) leaves the order of tied scores unspecified; the arrays
    below have no ties (mgap breaks ties by image order)."""
    ap = np.zeros(scores.shape[1])
    rg = np.arange(1, scores.shape[0] + 1, dtype=float)
    for k in range(scores.shape[1]):
        sortind = np.argsort(-scores[:, k])
        truth = targets[sortind, k]
        tp = truth.astype(float).cumsum(0)
        precision = tp / rg
        ap[k] = precision[truth.astype(bool)].sum() / max(float(truth.sum()), 1)
    return ap


def _multi_label_case(rng, n=40, C=6, d=8):
    classes = rng.normal(size=(C, d))
    truth = rng.random((n, C)) < 0.3
    truth[:, 5] = False  # a class no image carries: CLIP_benchmark counts its AP as 0
    truth[0] = False  # an unlabelled image still ranks as a negative
    truth[1, :2] = True  # at least one image with two labels
    images = truth[:, :C] @ classes + 0.8 * rng.normal(size=(n, d))
    return images, classes, truth


def test_mean_average_precision_is_clip_benchmarks(rng):
    images, classes, truth = _multi_label_case(rng)
    names = [f"c{k}" for k in range(6)]
    doc = zero_shot(images, classes, truth, names)
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
    logits = 100.0 * unit(images) @ unit(classes).T  # run_classification's logits
    expected = _clip_benchmark_ap(logits, truth)
    assert doc["multi_label"] is True
    assert [r["average_precision"] for r in doc["per_class"]] == pytest.approx(expected, abs=1e-12)
    assert doc["mean_average_precision"] == pytest.approx(expected.mean(), abs=1e-12)
    assert doc["mean_average_precision_present"] == pytest.approx(expected[:5].mean(), abs=1e-12)
    assert "all images" in doc["map_definition"]


def test_average_precision_ignores_image_order_and_class_numbering(rng):
    images, classes, truth = _multi_label_case(rng)
    names = [f"c{k}" for k in range(6)]
    doc = zero_shot(images, classes, truth, names)
    rows, cols = rng.permutation(40), rng.permutation(6)
    moved = zero_shot(images[rows], classes[cols], truth[rows][:, cols], [names[c] for c in cols])
    by_name = {r["name"]: r["average_precision"] for r in moved["per_class"]}
    assert {r["name"]: r["average_precision"] for r in doc["per_class"]} == pytest.approx(by_name)
    assert moved["mean_average_precision"] == pytest.approx(doc["mean_average_precision"])


def test_mean_per_class_recall_is_balanced_accuracy(rng):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    classes = rng.normal(size=(4, 6))
    target = np.repeat(np.arange(4), [3, 9, 5, 7])
    images = classes[target] + 1.5 * rng.normal(size=(24, 6))
    doc = zero_shot(images, classes, target, ["a", "b", "c", "d"])
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
    pred = np.argmax(unit(images) @ unit(classes).T, axis=1)
    expected = sklearn_metrics.balanced_accuracy_score(target, pred)  # CLIP_benchmark's call
    assert doc["mean_per_class_recall"] == pytest.approx(expected, abs=1e-12)
    assert "mean_average_precision" not in doc  # single-label: CLIP_benchmark reports acc1/5


def test_per_class_recall_on_multi_label_data_counts_the_class_itself():
    classes = np.eye(3)
    images = np.array([[1.0, 0.5, 0], [0, 0.2, 1.0], [0, 1.0, 0.9], [0.2, 1.0, 0]])
    truth = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=bool)
    per = {r["name"]: r for r in zero_shot(images, classes, truth, NAMES)["per_class"]}
    # dog: images 0, 2, 3 carry it; 2 and 3 are predicted dog, 0 is predicted cat
    assert per["dog"]["recall"] == pytest.approx(2 / 3) and per["dog"]["accuracy"] == 1.0
    assert per["cat"]["recall"] == pytest.approx(1 / 3)  # of images 0, 1, 3 only 0 says cat
    assert per["car"]["recall"] == 0.0 and per["car"]["accuracy"] == 1.0


def test_cli_multi_label_store_reports_map_and_recall(rng, make_store, cli):
    images, classes, truth = _multi_label_case(rng)
    names = [f"c{k}" for k in range(6)]
    primary = np.where(truth.any(axis=1), truth.argmax(axis=1), -1)
    path = make_store(
        X=images,
        Y=images,
        category_names=names,
        supercategories=[""] * 6,
        primary=primary,
        labels=truth,
        prompts={"category": (names, classes)},
    )
    doc = json.loads(cli("zeroshot", str(path), "--json").stdout)
    expected = zero_shot(images, classes, truth, names)
    assert doc["mean_average_precision"] == pytest.approx(expected["mean_average_precision"])
    assert doc["mean_per_class_recall"] == pytest.approx(expected["mean_per_class_recall"])
    people = cli("zeroshot", str(path))
    assert people.returncode == 0 and "mAP" in people.stdout and "recall" in people.stdout
