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

from mgap.core.errors import StoreError, UsageError
from mgap.engine.studies.hyperbolic import (
    distance_from_origin,
    exp_map0,
    exterior_angle,
    half_aperture,
    log_map0,
    pairwise_distance,
)
from mgap.store import Store
from mgap.store.schema import GEOMETRY_LORENTZ, PROMPT_SET_CATEGORY

ROOT = "[ROOT]"
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


def _image_row(store: Store, image_id: str) -> int:
    ids = np.asarray(store.image_ids).astype(str)
    rows = np.flatnonzero(ids == str(image_id))
    if rows.size == 0:
        shown = ", ".join(ids[:3])
        raise StoreError(
            f"{store.path.name} has no image with id {image_id!r}",
            hint=f"ids look like {shown}; `mgap export` lists them all",
        )
    return int(rows[0])


def _candidates(store: Store, prompts: bool, label_set: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(texts, their embeddings, what they are)."""
    if not prompts:
        if not store.has_texts:
            raise StoreError(f"{store.path.name} has no caption embeddings to traverse towards")
        return np.asarray(store.captions).astype(str), store.text_embeddings(np.float32), "captions"
    found = store.prompt_embeddings(label_set)
    if found is None:
        available = ", ".join(store.prompt_sets) or "none"
        raise StoreError(
            f"{store.path.name} has no class prompts for {label_set!r} (available: {available})",
            hint="drop --prompts to use the captions",
        )
    names, embeddings = found
    return np.asarray(names).astype(str), np.asarray(embeddings), f"prompts:{label_set}"


def traverse_report(
    store: Store,
    image_id: str,
    *,
    steps: int = 20,
    k: int = 3,
    prompts: bool = False,
    label_set: str = PROMPT_SET_CATEGORY,
    entailed_only: bool = False,
) -> dict:
    """The `mgap traverse --json` document: one entry per step with its `origin_distance`."""
    from mgap.engine.studies.pairs import store_header

    if store.geometry != GEOMETRY_LORENTZ:
        raise UsageError(
            f"traverse walks towards the hyperboloid's origin; {store.path.name} is {store.geometry}",
            hint="use a Lorentz store (meru: checkpoints, or `mgap import --geometry lorentz`)",
        )
    c = abs(store.curvature)
    if not c > 0:
        raise StoreError(
            f"{store.path.name} is a Lorentz store without a curvature",
            hint="re-import it with `mgap import --geometry lorentz --curvature C`",
        )
    if k < 1:
        raise UsageError(f"--k must be at least 1, got {k}")
    row = _image_row(store, image_id)
    x = store.image_embeddings()[row]
    t, points = traversal_points(x, c, steps)
    names, embeddings, kind = _candidates(store, prompts, label_set)
    rows, dists, entails = nearest_texts(points, embeddings, c, k, entailed_only)
    from_origin = distance_from_origin(points, c)
    own = np.flatnonzero(store.text_image_index == row) if store.has_texts else np.array([])
    captions = np.asarray(store.captions).astype(str) if own.size else np.array([])
    out_steps = []
    for i in range(steps):
        nearest = [
            {
                "text": ROOT if r == -1 else str(names[r]),
                "row": None if r == -1 else int(r),
                "distance": float(d),
                "entails": bool(e),
            }
            for r, d, e in zip(rows[i], dists[i], entails[i], strict=True)
            if r != -2
        ]
        out_steps.append(
            {
                "step": i,
                "t": float(t[i]),
                "origin_distance": float(from_origin[i]),
                "nearest": nearest,
            }
        )
    return {
        **store_header(store),
        "score": "lorentz_distance",
        "curvature": -c,
        "image": str(image_id),
        "image_row": row,
        "image_captions": [str(captions[j]) for j in own],
        "candidates": kind,
        "n_candidates": int(len(names)),
        "entailed_only": bool(entailed_only),
        "k": int(k),
        "steps": out_steps,
    }
