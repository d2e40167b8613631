"""Which score a store's rankings use: cosine on Euclidean stores, the negative geodesic
distance on Lorentz ones (the scores themselves are `mgap.engine.measures.scores`)."""

from __future__ import annotations

from typing import Any

from mgap.core.errors import UsageError
from mgap.engine.measures.scores import COSINE, CURVED, LORENTZ_DISTANCE, SCORES, Score
from mgap.store.schema import GEOMETRY_LORENTZ


def resolve_score(geometry: str, curvature: float, requested: str | None = None) -> Score:
    """The store's default score, or the requested one when it fits the store's geometry."""
    lorentz = geometry == GEOMETRY_LORENTZ
    name = requested or (LORENTZ_DISTANCE if lorentz else COSINE)
    if name not in SCORES:
        raise UsageError(f"unknown score {name!r}", hint=f"use one of {', '.join(SCORES)}")
    if lorentz and name == COSINE:
        raise UsageError(
            "cosine is ambiguous on a Lorentz store",
            hint="use --score space_cosine (space components) or lorentz_distance",
        )
    if not lorentz and name != COSINE:
        raise UsageError(
            f"--score {name} needs a Lorentz store; this one is {geometry}",
            hint="use --score cosine, or import hyperbolic embeddings with --geometry lorentz",
        )
    if name in CURVED:
        if not curvature > 0:
            raise UsageError(
                "this Lorentz store has no curvature",
                hint="re-import it with `mgap import --geometry lorentz --curvature C`",
            )
        return Score(name, abs(float(curvature)))
    return Score(name)


def store_score(store: Any, requested: str | None = None) -> Score:
    return resolve_score(store.geometry, abs(store.curvature), requested)
