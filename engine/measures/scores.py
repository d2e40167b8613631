"""Image-text similarity scores for ranking (retrieval, zero-shot, traversals), by geometry.

- `cosine`: x̂·ŷ, the Euclidean stores' score (CLIP, and MERU's CLIP baselines).
- `lorentz_distance`: −d(x, y) with d = arccosh(−c⟨x, y⟩_L)/√c and
  ⟨x, y⟩_L = x_s·y_s − x_t·y_t, x_t = sqrt(1/c + ‖x_s‖²): the default for Lorentz stores.
  MERU (Desai et al., ICML 2023, `meru/lorentz.py` `pairwise_dist`; its evaluation ranks by
  `pairwise_inner`, which orders candidates identically since arccosh is monotone) trains
  and evaluates with it.
- `space_cosine`: the cosine of the space components, what mgap used on Lorentz stores
  before; it ignores distance from the origin and is kept for comparison.
- `atmg_angle`: "Accept the Modality Gap" (Ramasinghe et al., CVPR 2024; samgregoost/atmg,
  `atmg/evaluation/retrieval.py` and `classification.py`, `lorentz.pairwise_oxy_angle`):
  exterior angles of the triangle O·x·y instead of distances, one per direction. Text ->
  image ranks images by the exterior angle at the image towards the text (larger first: the
  text lies towards the root); image -> text ranks texts by minus the exterior angle at the
  text towards the image (the image inside the text's cone first); zero-shot ranks classes
  like text -> image. ATMG's clamps (eps 1e-8) are kept.

The Lorentz score runs through the same float32 block products as the cosine: ⟨x, y⟩_L is
the dot product of [x_s, x_t] with [y_s, −y_t], and each block is turned into −d in place
(on the backend's device), so scores stay on the scale of distances for the tie tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mgap.engine.measures.rows import unit_rows

COSINE = "cosine"
LORENTZ_DISTANCE = "lorentz_distance"
SPACE_COSINE = "space_cosine"
ATMG_ANGLE = "atmg_angle"
SCORES = (COSINE, LORENTZ_DISTANCE, SPACE_COSINE, ATMG_ANGLE)
#: scores that need the store's curvature
CURVED = (LORENTZ_DISTANCE, ATMG_ANGLE)
#: ATMG's numerical guard in `pairwise_oxy_angle`
ATMG_EPS = 1e-8
#: rows per block of paired dot products
PAIRED_BLOCK = 65_536
#: rows of X per float64 block in `Score.matrix`
MATRIX_ROWS = 8192


@dataclass(frozen=True)
class Score:
    """One similarity. `curvature` is c > 0 for the Lorentz scores, else 0; `direction`
    ("i2t" or "t2i") picks ATMG's angle for one retrieval direction ("t2i" also serves
    zero-shot, images scored against class prompts)."""

    name: str = COSINE
    curvature: float = 0.0
    direction: str = "t2i"

    @property
    def curved(self) -> bool:
        return self.name in CURVED

    def for_direction(self, direction: str) -> Score:
        return replace(self, direction=direction)

    def prepare(self, X: np.ndarray, Y: np.ndarray, dtype: type = np.float32) -> Prepared:
        """Rows whose dot products `Prepared.finish_` turns into scores (float32 for blocks)."""
        if not self.curved:
            return Prepared(self, unit_rows(X, dtype), unit_rows(Y, dtype))
        c = self.curvature
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        xt = np.sqrt(1.0 / c + np.sum(X * X, axis=1))
        yt = np.sqrt(1.0 / c + np.sum(Y * Y, axis=1))
        A = np.hstack([X, xt[:, None]]).astype(dtype)  # A·B = ⟨x, y⟩_L
        B = np.hstack([Y, -yt[:, None]]).astype(dtype)
        norms = (xt, np.linalg.norm(X, axis=1), yt, np.linalg.norm(Y, axis=1))
        return Prepared(self, A, B, tuple(v.astype(dtype) for v in norms))

    def matrix(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """The full (len X, len Y) score matrix in float64, for small candidate sets Y.

        X is taken to float64 MATRIX_ROWS rows at a time (every step is per row), so a
        float32 side of a large store is never copied whole in float64."""
        out = np.empty((len(X), len(Y)))
        for lo in range(0, len(X), MATRIX_ROWS):
            prepared = self.prepare(X[lo : lo + MATRIX_ROWS], Y, np.float64)
            out[lo : lo + len(prepared.A)] = prepared.finish_(
                prepared.A @ prepared.B.T, 0, len(prepared.A)
            )
        return out

    def describe(self) -> dict:
        """What the JSON documents carry: the score's name (and c when it depends on it)."""
        out: dict = {"score": self.name}
        if self.curved:
            out["score_curvature"] = -self.curvature
        return out


@dataclass(frozen=True)
class Prepared:
    """Prepared rows A (images) and B (texts); for the Lorentz scores also each side's time
    component and space norm, (x_t, ‖x_s‖, y_t, ‖y_s‖)."""

    score: Score
    A: np.ndarray
    B: np.ndarray
    aux: tuple[np.ndarray, ...] = ()

    def finish_(self, S: Any, lo: int, hi: int, c0: int = 0, c1: int | None = None) -> Any:
        """Dot products of A[lo:hi] with B[c0:c1] (every row of B by default) -> scores
        (numpy array or torch tensor; in place where the score allows)."""
        name = self.score.name
        if name == LORENTZ_DISTANCE:
            return _neg_distance_(S, self.score.curvature)
        if name == ATMG_ANGLE:
            xt, xn, yt, yn = self.aux
            rows = (xt[lo:hi, None], xn[lo:hi, None])
            cols = (yt[None, c0:c1], yn[None, c0:c1])
            return _atmg_angle(S, self.score.curvature, rows, cols, self.score.direction)
        return S

    def paired(self, rows_of_b: np.ndarray) -> np.ndarray:
        """float32 score of each text j with its image `rows_of_b[j]` (in blocks of rows, so
        no copy of a side is gathered at once)."""
        dots = np.empty(len(self.B), dtype=np.float32)
        for lo in range(0, len(self.B), PAIRED_BLOCK):
            hi = lo + PAIRED_BLOCK
            dots[lo:hi] = np.einsum("ij,ij->i", self.A[rows_of_b[lo:hi]], self.B[lo:hi])
        if self.score.name != ATMG_ANGLE:
            return np.asarray(self.finish_(dots, 0, len(dots)))
        xt, xn, yt, yn = self.aux
        rows = (xt[rows_of_b], xn[rows_of_b])
        return _atmg_angle(dots, self.score.curvature, rows, (yt, yn), self.score.direction)


def _neg_distance_(S: Any, c: float) -> Any:
    """⟨x, y⟩_L -> −arccosh(−c⟨x, y⟩_L)/√c, in place."""
    rc = np.sqrt(c)
    if isinstance(S, np.ndarray):
        np.multiply(S, -c, out=S)
        np.maximum(S, 1.0, out=S)
        np.arccosh(S, out=S)
        np.multiply(S, -1.0 / rc, out=S)
        return S
    return S.mul_(-c).clamp_(min=1.0).acosh_().mul_(-1.0 / rc)


def _atmg_angle(S: Any, c: float, rows: tuple, cols: tuple, direction: str) -> Any:
    """ATMG's `pairwise_oxy_angle` from ⟨x, y⟩_L: for "t2i" the exterior angle at the image
    towards the text (larger is better), for "i2t" minus the angle at the text towards the
    image. `rows`/`cols` are the images' and texts' (time, space norm), broadcastable."""
    (xt, xn), (yt, yn) = rows, cols
    if direction == "t2i":
        apex_time, other_time, apex_norm, sign = xt, yt, xn, 1.0
    else:
        apex_time, other_time, apex_norm, sign = yt, xt, yn, -1.0
    eps = ATMG_EPS
    if isinstance(S, np.ndarray):
        cxy = c * S
        den = apex_norm * np.sqrt(np.maximum(cxy * cxy - 1.0, eps)) + eps
        cos = (other_time + cxy * apex_time) / den
        return sign * np.arccos(np.clip(cos, -1.0 + eps, 1.0 - eps)).astype(S.dtype)
    cxy = S * c
    new = S.new_tensor
    den = new(apex_norm) * (cxy * cxy - 1.0).clamp(min=eps).sqrt() + eps
    cos = (new(other_time) + cxy * new(apex_time)) / den
    return cos.clamp(-1.0 + eps, 1.0 - eps).acos() * sign
