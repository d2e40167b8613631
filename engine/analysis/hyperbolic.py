"""Lorentz-model geometry for hyperbolic stores (MERU, "Accept the Modality Gap").

The hyperboloid of curvature −c is {x : ⟨x, x⟩_L = −1/c, x_time > 0} with
⟨x, y⟩_L = x_space·y_space − x_time·y_time. Stores keep only the space components (as
MERU does); the time component is recomputed as x_time = sqrt(1/c + ‖x_space‖²). The
origin is O = (1/√c, 0); its tangent space is the space part, so tangent vectors are
plain d-vectors.
"""

from __future__ import annotations

import numpy as np

from mgap.engine.analysis.gap import check_pairs, gap_metrics

#: pairs drawn for the mean geodesic distances within and across modalities
SAMPLE_PAIRS = 100_000


def _check_c(c: float) -> float:
    if not c > 0:
        raise ValueError(f"curvature must be given as c > 0 (the space has curvature -c), got {c}")
    return float(c)


def time_component(x_space: np.ndarray, c: float = 1.0) -> np.ndarray:
    return np.sqrt(1.0 / _check_c(c) + np.sum(np.asarray(x_space) ** 2, axis=-1))


def exp_map0(v: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Space components of exp_O(v): sinh(√c‖v‖) v / (√c‖v‖)."""
    v = np.asarray(v, dtype=np.float64)
    rc = np.sqrt(_check_c(c))
    r = rc * np.linalg.norm(v, axis=-1, keepdims=True)
    scale = np.where(r > 0, np.sinh(r) / np.where(r > 0, r, 1.0), 1.0)
    return scale * v


def log_map0(x_space: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Tangent vector at O pointing to x: arcsinh(√c‖x_s‖) x_s / (√c‖x_s‖) (inverse of exp_map0)."""
    x = np.asarray(x_space, dtype=np.float64)
    rc = np.sqrt(_check_c(c))
    r = rc * np.linalg.norm(x, axis=-1, keepdims=True)
    scale = np.where(r > 0, np.arcsinh(r) / np.where(r > 0, r, 1.0), 1.0)
    return scale * x


def distance_from_origin(x_space: np.ndarray, c: float = 1.0) -> np.ndarray:
    """d(O, x) = arcsinh(√c‖x_s‖)/√c: the stable form of arccosh(√c·x_time)/√c."""
    rc = np.sqrt(_check_c(c))
    return np.arcsinh(rc * np.linalg.norm(np.asarray(x_space, dtype=np.float64), axis=-1)) / rc


def geodesic_distance(x_space: np.ndarray, y_space: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Row-wise d(x, y) = arccosh(−c⟨x, y⟩_L)/√c, via the chord form (2/√c)·arcsinh(√c·ℓ/2).

    ℓ² = ⟨x − y, x − y⟩_L = ‖x_s − y_s‖² − (x_t − y_t)² ≥ 0 is the Lorentzian chord; the
    arcsinh form keeps full precision for nearby points where arccosh(≈1) does not.
    """
    x = np.asarray(x_space, dtype=np.float64)
    y = np.asarray(y_space, dtype=np.float64)
    rc = np.sqrt(_check_c(c))
    dt = time_component(x, c) - time_component(y, c)
    chord_sq = np.sum((x - y) ** 2, axis=-1) - dt * dt
    return 2.0 / rc * np.arcsinh(rc * np.sqrt(np.maximum(chord_sq, 0.0)) / 2.0)


def _sampled_mean(A: np.ndarray, B: np.ndarray, c: float, rng, exclude_self: bool) -> float:
    if A.shape[0] == 0 or B.shape[0] == 0 or (exclude_self and A.shape[0] < 2):
        return float("nan")
    i = rng.integers(0, A.shape[0], SAMPLE_PAIRS)
    j = rng.integers(0, B.shape[0], SAMPLE_PAIRS)
    if exclude_self:
        keep = i != j
        i, j = i[keep], j[keep]
    return float(geodesic_distance(A[i], B[j], c).mean())


def hyperbolic_report(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    c: float,
    *,
    top_k: int = 10,
    seed: int = 0,
) -> dict:
    """Tangent-space gap (log map at O, then the Euclidean metrics), geodesic distances, and
    each modality's mean distance from the origin."""
    index = check_pairs(X, Y, text_image_index)
    c = _check_c(c)
    rng = np.random.default_rng(seed)
    return {
        "curvature": -c,
        "tangent_gap": gap_metrics(log_map0(X, c), log_map0(Y, c), index, top_k=top_k),
        "geodesic": {
            "paired": float(geodesic_distance(X[index], Y, c).mean()),
            "image_text": _sampled_mean(X, Y, c, rng, exclude_self=False),
            "image_image": _sampled_mean(X, X, c, rng, exclude_self=True),
            "text_text": _sampled_mean(Y, Y, c, rng, exclude_self=True),
            "sampled_pairs": SAMPLE_PAIRS,
        },
        "origin_distance": {
            "image": float(distance_from_origin(X, c).mean()),
            "text": float(distance_from_origin(Y, c).mean()),
        },
    }
