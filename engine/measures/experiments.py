"""Gap experiments: an intervention (`mgap.engine.measures.interventions`) applied to the
unit rows, then gap, retrieval and (on request) the InfoNCE loss and zero-shot top-1
recomputed on what it returns.

- `gap_shift` / `ablate_dims`: "Mind the Gap"'s shift along λ and "Two Effects, One
  Trigger"'s ablation of the top-k gap dims, one row per grid point (`sweep`).
- `before_after`: one intervention (`center`) measured before and after, with deltas.
The InfoNCE loss is that of a CLIP batch (each image with its first caption) at the given
logit scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgap.engine.measures.gap import check_pairs, first_caption_rows, gap_metrics
from mgap.engine.measures.interventions import (
    INTERVENTIONS,
    Intervention,
    Rows,
    gap_dim_order,
    unit,
)
from mgap.engine.measures.retrieval import retrieval_metrics
from mgap.engine.measures.zeroshot import zero_shot

#: rows per block of the InfoNCE logits
LOSS_BLOCK = 2048
#: the numbers `before_after` subtracts: flat key -> (metric, recall key or None)
DELTA_KEYS = {
    "l2m": ("l2m", None),
    "l2i": ("l2i", None),
    "mean_paired_cosine": ("mean_paired_cosine", None),
    "rmg": ("rmg", None),
    "i2t_r1": ("i2t", "R@1"),
    "i2t_r5": ("i2t", "R@5"),
    "t2i_r1": ("t2i", "R@1"),
    "t2i_r5": ("t2i", "R@5"),
    "zeroshot_top1": ("zeroshot_top1", None),
}


def symmetric_infonce(Xn: np.ndarray, Yn: np.ndarray, logit_scale: float) -> float:
    """CLIP's loss for the batch of pairs (Xn[i], Yn[i]): ½(CE(image→text) + CE(text→image)).

    Cosines are ≤ 1, so exp(scale·(cos − 1)) never overflows: log-sum-exps are accumulated in
    blocks with that fixed shift, and no n × n matrix is kept.
    """
    n = Xn.shape[0]
    positive = logit_scale * np.einsum("ij,ij->i", Xn, Yn)
    row_lse = np.empty(n)
    col_sum = np.zeros(n)
    for lo in range(0, n, LOSS_BLOCK):
        shifted = np.exp(logit_scale * (Xn[lo : lo + LOSS_BLOCK] @ Yn.T - 1.0))
        row_lse[lo : lo + LOSS_BLOCK] = logit_scale + np.log(shifted.sum(axis=1))
        col_sum += shifted.sum(axis=0)
    col_lse = logit_scale + np.log(col_sum)
    return float(0.5 * (np.mean(row_lse - positive) + np.mean(col_lse - positive)))


@dataclass(frozen=True)
class ZeroShotTruth:
    """What zero-shot top-1 needs besides the prompts: the class names and the multi-hot
    (n_images, n_classes) truth."""

    names: list[str]
    truth: np.ndarray


def measure(
    rows: Rows,
    index: np.ndarray,
    logit_scale: float | None = None,
    classes: ZeroShotTruth | None = None,
) -> dict:
    """{"l2m", "l2i", "mean_paired_cosine", "rmg", "i2t", "t2i"} of the rows, plus
    "infonce" with a logit scale and "zeroshot_top1" with prompts and `classes`."""
    X, Y = rows.images, rows.texts
    gap = gap_metrics(X, Y, index, top_k=0)
    out = {key: gap[key] for key in ("l2m", "l2i", "mean_paired_cosine", "rmg")}
    out.update(retrieval_metrics(X, Y, index))
    if logit_scale is not None:
        first = first_caption_rows(index)
        out["infonce"] = symmetric_infonce(X[index[first]], Y[first], logit_scale)
    if classes is not None and rows.prompts is not None:
        top1 = zero_shot(X, rows.prompts, classes.truth, classes.names)["accuracy"]
        out["zeroshot_top1"] = top1
    return out


def sweep(
    intervention: Intervention,
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    params: Sequence[Any],
    logit_scale: float | None = None,
) -> list[dict]:
    """`measure` of the intervention's rows at each parameter of the grid."""
    index = check_pairs(X, Y, text_image_index)
    rows = unit(X, Y)
    return [measure(intervention.apply(rows, p), index, logit_scale) for p in params]


def gap_shift(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    lambdas: Sequence[float],
    logit_scale: float = 100.0,
) -> list[dict]:
    """One row per λ: {"lambda", "l2m", "l2i", "mean_paired_cosine", "rmg", "i2t", "t2i",
    "infonce"}."""
    steps = sweep(INTERVENTIONS["shift"], X, Y, text_image_index, lambdas, logit_scale)
    return [{"lambda": float(lam), **row} for lam, row in zip(lambdas, steps, strict=True)]


def ablate_dims(
    X: np.ndarray, Y: np.ndarray, text_image_index: np.ndarray, k_max: int
) -> list[dict]:
    """One row per k = 0..k_max: {"k", "dropped", gap and retrieval after dropping the top-k
    gap dims}."""
    check_pairs(X, Y, text_image_index)
    d = X.shape[1]
    if not 0 <= k_max < d:
        raise ValueError(f"k_max must be in [0, {d - 1}] for {d}-dim embeddings, got {k_max}")
    order = [int(i) for i in gap_dim_order(unit(X, Y))]
    steps = sweep(INTERVENTIONS["ablate"], X, Y, text_image_index, range(k_max + 1))
    return [{"k": k, "dropped": order[:k], **row} for k, row in enumerate(steps)]


def flat_metrics(measured: dict) -> dict:
    """The `DELTA_KEYS` numbers of one `measure` (None where it has none)."""
    out = {}
    for name, (metric, recall) in DELTA_KEYS.items():
        value = measured.get(metric)
        out[name] = value.get(recall) if recall is not None and value is not None else value
    return out


def deltas(before: dict, after: dict) -> dict:
    """after − before for every `DELTA_KEYS` number both have."""
    b, a = flat_metrics(before), flat_metrics(after)
    return {k: (None if a[k] is None or b[k] is None else float(a[k] - b[k])) for k in DELTA_KEYS}


def subset(
    rows: Rows, index: np.ndarray, images: np.ndarray, classes: ZeroShotTruth | None = None
) -> tuple[Rows, np.ndarray, ZeroShotTruth | None]:
    """The rows of the images in the boolean mask `images` and of their captions, the
    caption -> image index renumbered, and their zero-shot truth (prompts unchanged)."""
    captions = images[index]
    renumber = np.cumsum(images) - 1
    part = Rows(rows.images[images], rows.texts[captions], rows.prompts)
    truth = None if classes is None else ZeroShotTruth(classes.names, classes.truth[images])
    return part, renumber[index[captions]], truth


def compared(
    rows: Rows, after: Rows, index: np.ndarray, classes: ZeroShotTruth | None = None
) -> dict:
    """{"before", "after", "delta"}: `measure` of the rows as they were and as they are."""
    before, later = measure(rows, index, classes=classes), measure(after, index, classes=classes)
    return {"before": before, "after": later, "delta": deltas(before, later)}


def before_after(
    intervention: Intervention,
    rows: Rows,
    index: np.ndarray,
    param: Any = None,
    classes: ZeroShotTruth | None = None,
) -> tuple[Rows, dict]:
    """(the rows after, {"before", "after", "delta"}) of one intervention on unit rows."""
    after = intervention.apply(rows, param)
    return after, compared(rows, after, index, classes)
