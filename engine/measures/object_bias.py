"""Object bias (the MOAD measure of "Two Effects, One Trigger", Schrodi et al. 2025).

Why: contrastive models trained on captions that name objects more reliably than
attributes organise their space by object. Per modality, the separation of a labelling is
the mean cosine similarity of pairs in the same class minus that of pairs in different
classes; the object bias is the object separation minus the mean attribute separation
(positive = the space is organised more by object than by attribute). Zero-shot accuracy
for attributes is reported next to the object accuracy, from the store's prompt embeddings.
Numpy only; every mean over pairs is computed from class sums in O(n d).
"""

from __future__ import annotations

import numpy as np

from mgap.engine.measures.rows import unit_rows


def class_separation(X: np.ndarray, labels: np.ndarray) -> dict[str, float | int | None]:
    """Mean cosine within classes, across classes, and their difference, over pairs i != j.

    Rows labelled -1 or "" are left out. With S_c the sum of class c's unit rows and S the
    sum of all, the within-pair total is sum_c (|S_c|^2 - n_c) and the all-pair total
    |S|^2 - n; across is their difference.
    """
    labels = np.asarray(labels)
    keep = labels != (-1 if labels.dtype.kind in "iu" else "")
    Xn, labels = unit_rows(np.asarray(X)[keep]), labels[keep]
    classes, codes = np.unique(labels, return_inverse=True)
    n = len(labels)
    members = np.zeros((len(classes), n))
    members[codes, np.arange(n)] = 1.0
    sums = members @ Xn  # a BLAS product; np.add.at is ~10x slower here
    counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
    self_sim = float(np.einsum("ij,ij->", Xn, Xn))
    within_total = float(np.einsum("ij,ij->", sums, sums)) - self_sim
    within_pairs = float((counts * (counts - 1)).sum())
    total = sums.sum(axis=0)
    all_total = float(total @ total) - self_sim
    across_pairs = n * (n - 1) - within_pairs
    within = within_total / within_pairs if within_pairs else None
    across = (all_total - within_total) / across_pairs if across_pairs else None
    return {
        "within": within,
        "across": across,
        "separation": None if within is None or across is None else within - across,
        "n": int(n),
        "n_classes": int(len(classes)),
    }


def object_bias(
    X: np.ndarray, objects: np.ndarray, attributes: dict[str, np.ndarray]
) -> dict[str, object]:
    """Separations of one modality's rows by object and by each attribute, and their bias."""
    obj = class_separation(X, objects)
    per_attribute = {key: class_separation(X, values) for key, values in attributes.items()}
    seps = [r["separation"] for r in per_attribute.values() if r["separation"] is not None]
    mean_attr = float(np.mean(seps)) if seps else None
    bias = (
        None
        if obj["separation"] is None or mean_attr is None
        else float(obj["separation"] - mean_attr)
    )
    return {
        "object": obj,
        "attributes": per_attribute,
        "mean_attribute_separation": mean_attr,
        "object_bias": bias,
    }
