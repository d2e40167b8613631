"""Zero-shot classification: each image takes the class whose prompt embedding is nearest.

Ground truth is either a class index per image (-1 = unlabelled, left out) or a multi-hot
(n_images, n_classes) matrix (COCO: every category in the image); multi-label images
count as correct when the top-1 class is any of their labels. Per-class accuracy is the
same score over the images that carry that class; per-class recall is the share of them
whose top-1 class is that class (CLIP_benchmark's `mean_per_class_recall`, sklearn's
balanced accuracy, is their mean on single-label data). Multi-label stores add
CLIP_benchmark's mean average precision (`average_precision_per_class`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.engine.measures.scores import Score


def as_multi_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        if labels.shape[1] != n_classes:
            raise ValueError(f"labels have {labels.shape[1]} columns for {n_classes} classes")
        return labels.astype(bool)
    if labels.ndim != 1:
        raise ValueError("labels must be a class index per image or a multi-hot matrix")
    labels = labels.astype(np.int64)
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"label {labels.max()} is out of range for {n_classes} classes")
    hot = np.zeros((labels.size, n_classes), dtype=bool)
    rows = np.flatnonzero(labels >= 0)
    hot[rows, labels[rows]] = True
    return hot


def average_precision_per_class(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(C,) CLIP_benchmark's AP per class: images ranked by score (ties in row order), the
    precision at each positive's rank summed and divided by the positives (0 when none)."""
    n = scores.shape[0]
    ranks = np.arange(1, n + 1, dtype=np.float64)
    ap = np.zeros(scores.shape[1])
    for k in range(scores.shape[1]):
        hits = truth[np.argsort(-scores[:, k], kind="stable"), k]
        precision = np.cumsum(hits) / ranks
        ap[k] = precision[hits].sum() / max(int(hits.sum()), 1)
    return ap


def zero_shot(
    image_embeddings: np.ndarray,
    class_embeddings: np.ndarray,
    labels_multi_hot_or_index: np.ndarray,
    class_names: Sequence[str],
    score: Score | None = None,
) -> dict:
    """{"accuracy", "top5_accuracy", "mean_class_accuracy", "mean_per_class_recall", "n",
    "n_classes", "multi_label", "per_class"}, plus "mean_average_precision" on multi-label
    data; top-5 counts an image when any of its 5 best classes is one of its labels."""
    n_classes = len(class_names)
    if class_embeddings.shape[0] != n_classes:
        raise ValueError(f"{class_embeddings.shape[0]} class embeddings for {n_classes} names")
    if image_embeddings.shape[1] != class_embeddings.shape[1]:
        raise ValueError("image and class embeddings have different dims")
    truth = as_multi_hot(labels_multi_hot_or_index, n_classes)
    if truth.shape[0] != image_embeddings.shape[0]:
        raise ValueError(f"{truth.shape[0]} label rows for {image_embeddings.shape[0]} images")
    labelled = truth.any(axis=1)
    all_scores = (score or Score()).matrix(image_embeddings, class_embeddings)
    multi_label = bool((truth.sum(axis=1) > 1).any())
    ap = average_precision_per_class(all_scores, truth) if multi_label else None
    scores = all_scores[labelled]
    predicted = np.argmax(scores, axis=1)
    truth = truth[labelled]
    correct = truth[np.arange(predicted.size), predicted]
    k5 = min(5, n_classes)
    top5 = np.argpartition(-scores, k5 - 1, axis=1)[:, :k5]
    correct5 = truth[np.arange(predicted.size)[:, None], top5].any(axis=1)
    per_class = _per_class(class_names, truth, correct, predicted, ap)
    out = _summary(per_class, correct, correct5, n_classes, multi_label)
    if ap is not None:
        has_positive = truth.any(axis=0)
        out["mean_average_precision"] = float(ap.mean())
        out["mean_average_precision_present"] = (
            float(ap[has_positive].mean()) if has_positive.any() else None
        )
        out["map_definition"] = (
            "CLIP_benchmark average_precision_per_class over all images; classes without "
            "positives count as AP 0 (the _present value leaves them out)"
        )
    return out


def _per_class(class_names, truth, correct, predicted, ap) -> list[dict]:
    """Accuracy, recall and predictions (and AP on multi-label data) of each class."""
    rows = []
    for c, name in enumerate(class_names):
        has = truth[:, c]
        row = {
            "name": str(name),
            "n": int(has.sum()),
            "accuracy": float(correct[has].mean()) if has.any() else None,
            "recall": float(np.mean(predicted[has] == c)) if has.any() else None,
            "n_predicted": int(np.count_nonzero(predicted == c)),
        }
        if ap is not None:
            row["average_precision"] = float(ap[c])
        rows.append(row)
    return rows


def _summary(per_class: list[dict], correct, correct5, n_classes: int, multi_label: bool) -> dict:
    present = [row["accuracy"] for row in per_class if row["accuracy"] is not None]
    recalls = [row["recall"] for row in per_class if row["recall"] is not None]
    return {
        "accuracy": float(correct.mean()) if correct.size else None,
        "top5_accuracy": float(correct5.mean()) if correct.size else None,
        "mean_class_accuracy": float(np.mean(present)) if present else None,
        "mean_per_class_recall": float(np.mean(recalls)) if recalls else None,
        "n": int(correct.size),
        "n_classes": n_classes,
        "multi_label": multi_label,
        "per_class": per_class,
    }
