"""Image-text similarity scores for ranking (retrieval, zero-shot, traversals), by geometry.

- `cosine`: x̂·ŷ, the Euclidean stores' score (CLIP, and MERU's CLIP baselines).
- `lorentz_distance`: −d(x, y) with d = arccosh(−c⟨x, y⟩_L)/√c and
  ⟨x, y⟩_L = x_s·y_s − x_t·y_t, x_t = sqrt(1/c + ‖x_s‖²): the default for Lorentz stores.
  MERU (Desai et al., ICML 2023, `meru/lorentz.py` `pairwise_dist`; its evaluation ranks by
  `pairwise_inner`, which orders candidates identically since arccosh is monotone) trains
  and evaluates with it.
- `space_cosine`: the cosine of the space components, what mgap used on Lorentz stores
  before; it ignores distance from the origin and is kept for comparison.

The Lorentz score runs through the same float32 block products as the cosine: ⟨x, y⟩_L is
the dot product of [x_s, x_t] with [y_s, −y_t], and each block is turned into −d in place
(on the backend's device), so scores stay on the scale of distances for the tie tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mgap.core.errors import UsageError

COSINE = "cosine"
LORENTZ_DISTANCE = "lorentz_distance"
SPACE_COSINE = "space_cosine"
SCORES = (COSINE, LORENTZ_DISTANCE, SPACE_COSINE)
SCORE_HELP = (
    "Similarity: cosine (Euclidean stores), lorentz_distance (negative geodesic distance; "
    "the default on Lorentz stores) or space_cosine (cosine of the space components)."
)


def _unit(A: np.ndarray, dtype: type) -> np.ndarray:
    A = np.asarray(A, dtype=dtype)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class Score:
    """One similarity; `curvature` is c > 0 for `lorentz_distance`, else 0."""

    name: str = COSINE
    curvature: float = 0.0

    @property
    def lorentz(self) -> bool:
        return self.name == LORENTZ_DISTANCE

    def prepare(
        self, X: np.ndarray, Y: np.ndarray, dtype: type = np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose dot products `finish_` turns into scores (float32 for the block products)."""
        if not self.lorentz:
            return _unit(X, dtype), _unit(Y, dtype)
        c = self.curvature
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        xt = np.sqrt(1.0 / c + np.sum(X * X, axis=1, keepdims=True))
        yt = np.sqrt(1.0 / c + np.sum(Y * Y, axis=1, keepdims=True))
        return np.hstack([X, xt]).astype(dtype), np.hstack([Y, -yt]).astype(dtype)

    def finish_(self, S: Any) -> Any:
        """Dot products -> scores, in place (a numpy array or a torch tensor)."""
        if not self.lorentz:
            return S
        c, rc = self.curvature, np.sqrt(self.curvature)
        if isinstance(S, np.ndarray):
            np.multiply(S, -c, out=S)
            np.maximum(S, 1.0, out=S)
            np.arccosh(S, out=S)
            np.multiply(S, -1.0 / rc, out=S)
            return S
        return S.mul_(-c).clamp_(min=1.0).acosh_().mul_(-1.0 / rc)

    def paired(self, A: np.ndarray, B: np.ndarray, rows_of_b: np.ndarray) -> np.ndarray:
        """float32 score of each row of B with its row `rows_of_b[j]` of A (prepared rows)."""
        dots = np.einsum("ij,ij->i", A[rows_of_b], B).astype(np.float32)
        return self.finish_(dots)

    def matrix(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """The full (len X, len Y) score matrix in float64, for small candidate sets."""
        A, B = self.prepare(X, Y, np.float64)
        S = A @ B.T
        if not self.lorentz:
            return S
        return -np.arccosh(np.maximum(-self.curvature * S, 1.0)) / np.sqrt(self.curvature)

    def describe(self) -> dict:
        """What the JSON documents carry: the score's name (and c when it depends on it)."""
        out: dict = {"score": self.name}
        if self.lorentz:
            out["score_curvature"] = -self.curvature
        return out


def resolve_score(geometry: str, curvature: float, requested: str | None = None) -> Score:
    """The store's default score, or the requested one when it fits the store's geometry."""
    from mgap.store.schema import GEOMETRY_LORENTZ

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
    if name == LORENTZ_DISTANCE:
        if not curvature > 0:
            raise UsageError(
                "this Lorentz store has no curvature",
                hint="re-import it with `mgap import --geometry lorentz --curvature C`",
            )
        return Score(name, abs(float(curvature)))
    return Score(name)


def store_score(store: Any, requested: str | None = None) -> Score:
    return resolve_score(store.geometry, abs(store.curvature), requested)
