"""`mgap traverse` on a Lorentz store (MERU §5): an image's geodesic to the origin and the
nearest captions or class prompts at each step (the walk is `mgap.engine.measures.traverse`)."""

from __future__ import annotations

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.hyperbolic import distance_from_origin
from mgap.engine.measures.traverse import nearest_texts, traversal_points
from mgap.engine.reports.studies import TraverseReport, TraverseStep, TraverseText
from mgap.engine.studies.pairs import store_header
from mgap.store import Store
from mgap.store.schema import GEOMETRY_LORENTZ, PROMPT_SET_CATEGORY

#: the origin's name among the nearest texts (it entails everything)
ROOT = "[ROOT]"


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


def _curvature(store: Store, k: int) -> float:
    """c > 0 of a Lorentz store; a one-line error for other stores and bad options."""
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
    return c


def _steps(t, from_origin, names, rows, dists, entails) -> list[TraverseStep]:
    """One step per point: its t, distance from the origin and nearest texts (-2: none)."""
    return [
        TraverseStep(
            step=i,
            t=float(t[i]),
            origin_distance=float(from_origin[i]),
            nearest=[
                TraverseText(
                    text=ROOT if r == -1 else str(names[r]),
                    row=None if r == -1 else int(r),
                    distance=float(d),
                    entails=bool(e),
                )
                for r, d, e in zip(rows[i], dists[i], entails[i], strict=True)
                if r != -2
            ],
        )
        for i in range(len(t))
    ]


def traverse_report(
    store: Store,
    image_id: str,
    *,
    steps: int = 20,
    k: int = 3,
    prompts: bool = False,
    label_set: str = PROMPT_SET_CATEGORY,
    entailed_only: bool = False,
) -> TraverseReport:
    """The `mgap traverse` report: one step per point with its `origin_distance`."""
    c = _curvature(store, k)
    row = _image_row(store, image_id)
    t, points = traversal_points(store.image_embeddings()[row], c, steps)
    names, embeddings, kind = _candidates(store, prompts, label_set)
    nearest = nearest_texts(points, embeddings, c, k, entailed_only)
    own = np.flatnonzero(store.text_image_index == row) if store.has_texts else np.array([])
    captions = np.asarray(store.captions).astype(str) if own.size else np.array([])
    return TraverseReport(
        **store_header(store),
        score="lorentz_distance",
        curvature=-c,
        image=str(image_id),
        image_row=row,
        image_captions=[str(captions[j]) for j in own],
        candidates=kind,
        n_candidates=int(len(names)),
        entailed_only=bool(entailed_only),
        k=int(k),
        steps=_steps(t, distance_from_origin(points, c), names, *nearest),
    )
