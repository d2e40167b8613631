"""Lorentz-model geometry for hyperbolic stores (MERU, "Accept the Modality Gap").

The hyperboloid of curvature −c is {x : ⟨x, x⟩_L = −1/c, x_time > 0} with
⟨x, y⟩_L = x_space·y_space − x_time·y_time. Stores keep only the space components (as
MERU does); the time component is recomputed as x_time = sqrt(1/c + ‖x_space‖²). The
origin is O = (1/√c, 0); its tangent space is the space part, so tangent vectors are
plain d-vectors.
"""

from __future__ import annotations

import numpy as np

from mgap.engine.measures.gap import check_pairs, gap_metrics

#: pairs drawn for the mean geodesic distances within and across modalities
SAMPLE_PAIRS = 100_000
#: MERU's entailment-cone constant K (`half_aperture(min_radius=0.1)`): cones of points within
#: 2K/√c of the origin are capped at a half-aperture of π/2
CONE_MIN_RADIUS = 0.1
#: bins of the distance-from-origin histograms
HISTOGRAM_BINS = 20


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


def pairwise_distance(A: np.ndarray, B: np.ndarray, c: float = 1.0) -> np.ndarray:
    """(len A, len B) geodesic distances arccosh(c(a_t b_t − a·b))/√c, in float64 (small sets)."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    c = _check_c(c)
    inner = A @ B.T - np.outer(time_component(A, c), time_component(B, c))
    return np.arccosh(np.maximum(-c * inner, 1.0)) / np.sqrt(c)


def half_aperture(x_space: np.ndarray, c: float = 1.0, k: float = CONE_MIN_RADIUS) -> np.ndarray:
    """Half-aperture of the entailment cone at x (MERU eq. 7): asin(2K / (√c‖x_s‖)), at most π/2."""
    r = np.sqrt(_check_c(c)) * np.linalg.norm(np.asarray(x_space, dtype=np.float64), axis=-1)
    ratio = np.divide(2.0 * k, r, out=np.full_like(r, np.inf), where=r > 0)
    return np.arcsin(np.minimum(ratio, 1.0))


def exterior_angle(x_space: np.ndarray, y_space: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Row-wise exterior angle at x of the triangle O x y (MERU eq. 8, `oxy_angle`): 0 when y
    lies further out on the geodesic from O through x, π when y lies between O and x.

    cos = (y_t + c⟨x,y⟩_L x_t) / (‖x_s‖ sqrt((c⟨x,y⟩_L)² − 1)), with (c⟨x,y⟩_L)² − 1 taken from
    the Lorentzian chord ℓ² (c⟨x,y⟩_L = −1 − cℓ²/2) so nearby points keep their precision.
    At y = x (no direction) the angle is 0: the apex belongs to its cone.
    """
    x = np.asarray(x_space, dtype=np.float64)
    y = np.asarray(y_space, dtype=np.float64)
    c = _check_c(c)
    xt, yt = time_component(x, c), time_component(y, c)
    chord_sq = np.maximum(np.sum((x - y) ** 2, axis=-1) - (xt - yt) ** 2, 0.0)
    cxy = -1.0 - c * chord_sq / 2.0
    den = np.linalg.norm(x, axis=-1) * np.sqrt(c * chord_sq * (1.0 + c * chord_sq / 4.0))
    cos = np.divide(yt + cxy * xt, den, out=np.ones_like(den), where=den > 0)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def entailment_cones(
    X: np.ndarray, Y: np.ndarray, text_image_index: np.ndarray, c: float
) -> dict[str, float | int | str]:
    """How often each caption's entailment cone holds its image (MERU: text entails image).

    `inside` = share of true pairs with exterior angle < half-aperture at the caption;
    `mean_angle_minus_aperture` averages angle − aperture (MERU's entailment loss before the
    clamp at 0; negative means inside on average).
    """
    index = check_pairs(X, Y, text_image_index)
    angle = exterior_angle(Y, X[index], c)
    aperture = half_aperture(Y, c)
    return {
        "definition": "MERU oxy_angle(text, image) < half_aperture(text), K = 0.1",
        "n_pairs": int(index.size),
        "inside": float(np.mean(angle < aperture)),
        "mean_angle_minus_aperture": float(np.mean(angle - aperture)),
        "mean_angle": float(angle.mean()),
        "mean_half_aperture": float(aperture.mean()),
    }


def origin_distances(X: np.ndarray, Y: np.ndarray, c: float, bins: int = HISTOGRAM_BINS) -> dict:
    """Per modality: mean distance from the origin, quartiles, and histograms on shared edges."""
    dx, dy = distance_from_origin(X, c), distance_from_origin(Y, c)
    both = np.concatenate([dx, dy])
    edges = np.linspace(float(both.min()), float(both.max()) or 1.0, bins + 1)
    out: dict = {"image": float(dx.mean()), "text": float(dy.mean())}
    for name, d in (("image", dx), ("text", dy)):
        out[f"{name}_quartiles"] = [float(q) for q in np.quantile(d, [0.25, 0.5, 0.75])]
    out["histogram"] = {
        "edges": [float(e) for e in edges],
        "image": np.histogram(dx, edges)[0].tolist(),
        "text": np.histogram(dy, edges)[0].tolist(),
    }
    return out


def tangent_gap_unnormalised(U: np.ndarray, V: np.ndarray, index: np.ndarray) -> dict[str, float]:
    """The gap between log-mapped images U and captions V keeping their norms (distances from
    the origin): centroid distance, mean paired distance, mean norms."""
    return {
        "centroid_distance": float(np.linalg.norm(U.mean(axis=0) - V.mean(axis=0))),
        "mean_paired_distance": float(np.linalg.norm(U[index] - V, axis=1).mean()),
        "mean_norm_image": float(np.linalg.norm(U, axis=1).mean()),
        "mean_norm_text": float(np.linalg.norm(V, axis=1).mean()),
    }


def _sampled_mean(A: np.ndarray, B: np.ndarray, c: float, rng, exclude_self: bool) -> float:
    if A.shape[0] == 0 or B.shape[0] == 0 or (exclude_self and A.shape[0] < 2):
        return float("nan")
    i = rng.integers(0, A.shape[0], SAMPLE_PAIRS)
    j = rng.integers(0, B.shape[0], SAMPLE_PAIRS)
    if exclude_self:
        keep = i != j
        i, j = i[keep], j[keep]
    return float(geodesic_distance(A[i], B[j], c).mean())


def hyperbolic_metrics(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    c: float,
    *,
    top_k: int = 10,
    seed: int = 0,
) -> dict:
    """Tangent-space gap (log map at O; the Euclidean metrics on unit vectors, and the same
    vectors un-normalised), geodesic distances, distance from the origin per modality, and the
    entailment-cone statistic."""
    index = check_pairs(X, Y, text_image_index)
    c = _check_c(c)
    rng = np.random.default_rng(seed)
    U, V = log_map0(X, c), log_map0(Y, c)
    return {
        "curvature": -c,
        "score": "lorentz_distance",
        "tangent_gap_definition": "log map at the origin, then normalised (cosine metrics)",
        "tangent_gap": gap_metrics(U, V, index, top_k=top_k),
        "tangent_gap_unnormalised": tangent_gap_unnormalised(U, V, index),
        "entailment": entailment_cones(X, Y, index, c),
        "geodesic": {
            "paired": float(geodesic_distance(X[index], Y, c).mean()),
            "image_text": _sampled_mean(X, Y, c, rng, exclude_self=False),
            "image_image": _sampled_mean(X, X, c, rng, exclude_self=True),
            "text_text": _sampled_mean(Y, Y, c, rng, exclude_self=True),
            "sampled_pairs": SAMPLE_PAIRS,
        },
        "origin_distance": origin_distances(X, Y, c),
    }
