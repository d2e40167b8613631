"""Retrieval recall and zero-shot accuracy from a full matrix of pair scores (`mgap itm`).

A single-stream model scores each (image, text) pair on its own, so its results are an
(n_images, n_texts) score matrix; these turn one into R@k and top-k accuracy. Ranks count
ties against the true pair: a candidate scoring the same as the truth is ranked ahead of
it, so a constant scorer gets R@1 = 0, never the perfect 1.0 a careless `argmax` over equal
scores reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _recalls(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    return {f"R@{k}": float(np.mean(ranks < k)) for k in ks}


def retrieval_from_scores(
    scores: np.ndarray, caption_image: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict:
    """i2t and t2i recall from an (n_images, n_captions) score matrix; ties count against."""
    scores = np.asarray(scores, dtype=np.float64)
    n_images, n_captions = scores.shape
    truth = scores[caption_image, np.arange(n_captions)]
    t2i = (scores >= truth[None, :]).sum(0) - 1  # other images at least as high
    own = caption_image[None, :] == np.arange(n_images)[:, None]  # (images, captions)
    has = own.any(1)
    best = np.where(own, scores, -np.inf).max(1)
    i2t = ((scores >= best[:, None]) & ~own).sum(1)[has]  # other images' captions ahead
    return {
        "i2t": {**_recalls(i2t, ks), "n": int(has.sum())},
        "t2i": {**_recalls(t2i, ks), "n": int(n_captions)},
    }


def zeroshot_from_scores(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)):
    """Top-k accuracy (a hit when any of the image's labels is in the top k); unlabelled
    images are left out; ties count against."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    keep = labels.any(1)
    best = np.where(labels, scores, -np.inf).max(1)
    ranks = ((scores >= best[:, None]) & ~labels).sum(1)[keep]
    out = {f"top{k}": float(np.mean(ranks < k)) if ranks.size else None for k in ks}
    out["error"] = None if out["top1"] is None else 1.0 - out["top1"]
    return {**out, "n": int(keep.sum())}
