"""Image traversals (MERU §5): walk the geodesic from an image embedding to the origin and
name the nearest texts at each step.

The geodesic from x to the origin O of the hyperboloid is exp_O(t·log_O(x)) for t from 1
to 0 (geodesics through O are straight lines in its tangent space), so step i sits at
distance t_i·d(O, x) from the origin. MERU's script does the same interpolation, ranks texts
by the Lorentzian inner product (the same order as the geodesic distance used here), adds
the origin itself as a "[ROOT]" text, and can keep only texts whose entailment cone holds
the point (`entailed_only`; the root entails everything).
"""

from __future__ import annotations

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.measures.hyperbolic import (
    exp_map0,
    exterior_angle,
    half_aperture,
    log_map0,
    pairwise_distance,
)

#: candidate texts scored at a time (steps x CHUNK float64 distances)
CHUNK = 65_536


def traversal_points(x_space: np.ndarray, c: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(t from 1 to 0, the points exp_O(t·log_O(x))): the image first, the origin last."""
    if steps < 2:
        raise UsageError(f"--steps must be at least 2, got {steps}")
    t = np.linspace(1.0, 0.0, steps)
    v = log_map0(np.asarray(x_space, dtype=np.float64)[None, :], c)[0]
    return t, exp_map0(t[:, None] * v[None, :], c)


def nearest_texts(
    points: np.ndarray, texts: np.ndarray, c: float, k: int, entailed_only: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: (rows, distances, entails) of its k nearest texts, row −1 being the root.

    Texts are scored in chunks, so a million captions never make a million-wide float64 row
    per step.
    """
    n = points.shape[0]
    root = np.linalg.norm(log_map0(points, c), axis=1)  # d(point, O)
    best_d = root[:, None].copy()
    best_r = np.full((n, 1), -1, dtype=np.int64)
    for lo in range(0, texts.shape[0], CHUNK):
        chunk = np.asarray(texts[lo : lo + CHUNK], dtype=np.float64)
        d = pairwise_distance(points, chunk, c)
        if entailed_only:
            d[~_entails(chunk, points, c).T] = np.inf
        rows = np.broadcast_to(np.arange(lo, lo + chunk.shape[0]), d.shape)
        all_d = np.hstack([best_d, d])
        all_r = np.hstack([best_r, rows])
        keep = np.argsort(all_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(all_d, keep, 1)
        best_r = np.take_along_axis(all_r, keep, 1)
    entails = np.ones(best_r.shape, dtype=bool)
    for i in range(n):
        real = best_r[i] >= 0
        if real.any():
            rows = best_r[i][real]
            entails[i, real] = _entails(np.asarray(texts[rows]), points[i : i + 1], c)[:, 0]
    finite = np.isfinite(best_d)
    return np.where(finite, best_r, -2), best_d, entails


def _entails(texts: np.ndarray, points: np.ndarray, c: float) -> np.ndarray:
    """(len texts, len points): the point lies inside the text's entailment cone."""
    aperture = half_aperture(texts, c)
    out = np.empty((texts.shape[0], points.shape[0]), dtype=bool)
    for j in range(points.shape[0]):
        angle = exterior_angle(texts, np.broadcast_to(points[j], texts.shape), c)
        out[:, j] = angle < aperture
    return out
