"""Gap experiments: the gap shift of "Mind the Gap" and the dimension ablation of
"Two Effects, One Trigger", each recomputing gap and retrieval along its grid.

Shift (Liang et al.): x' = norm(x̂ − ½λΔ/‖Δ‖), y' = norm(ŷ + ½λΔ/‖Δ‖), Δ the gap vector
of the unshifted data; λ > 0 moves the modalities towards each other. Along λ we report
the gap, retrieval and the symmetric InfoNCE loss of a CLIP batch (each image with its
first caption) at the given logit scale.
Ablation (Schrodi et al.): drop the k dims with the largest |Δ_d|, re-normalise, recompute.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.engine.measures.gap import check_pairs, first_caption_rows, gap_metrics, gap_vector
from mgap.engine.measures.retrieval import retrieval_metrics
from mgap.engine.measures.rows import unit_rows

#: rows per block of the InfoNCE logits
LOSS_BLOCK = 2048


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


def _step(Xn: np.ndarray, Yn: np.ndarray, index: np.ndarray, logit_scale: float | None) -> dict:
    gap = gap_metrics(Xn, Yn, index, top_k=0)
    out = {key: gap[key] for key in ("l2m", "l2i", "mean_paired_cosine", "rmg")}
    out.update(retrieval_metrics(Xn, Yn, index))
    if logit_scale is not None:
        first = first_caption_rows(index)
        out["infonce"] = symmetric_infonce(Xn[index[first]], Yn[first], logit_scale)
    return out


def gap_shift(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    lambdas: Sequence[float],
    logit_scale: float = 100.0,
) -> list[dict]:
    """One row per λ: {"lambda", "l2m", "l2i", "mean_paired_cosine", "rmg", "i2t", "t2i",
    "infonce"}."""
    index = check_pairs(X, Y, text_image_index)
    Xn, Yn = unit_rows(X), unit_rows(Y)
    delta = gap_vector(Xn, Yn)
    length = float(np.linalg.norm(delta))
    direction = delta / length if length > 0 else delta
    rows = []
    for lam in lambdas:
        shift = 0.5 * float(lam) * direction
        rows.append(
            {
                "lambda": float(lam),
                **_step(unit_rows(Xn - shift), unit_rows(Yn + shift), index, logit_scale),
            }
        )
    return rows


def ablate_dims(
    X: np.ndarray, Y: np.ndarray, text_image_index: np.ndarray, k_max: int
) -> list[dict]:
    """One row per k = 0..k_max: {"k", "dropped", gap and retrieval after dropping the top-k
    gap dims}."""
    index = check_pairs(X, Y, text_image_index)
    d = X.shape[1]
    if not 0 <= k_max < d:
        raise ValueError(f"k_max must be in [0, {d - 1}] for {d}-dim embeddings, got {k_max}")
    Xn, Yn = unit_rows(X), unit_rows(Y)
    order = np.argsort(-np.abs(gap_vector(Xn, Yn)), kind="stable")
    rows = []
    for k in range(k_max + 1):
        keep = np.sort(order[k:])
        rows.append(
            {
                "k": k,
                "dropped": [int(i) for i in order[:k]],
                **_step(Xn[:, keep], Yn[:, keep], index, None),
            }
        )
    return rows
