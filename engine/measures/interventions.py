"""Interventions on a store's embeddings: one function that maps (image, text, prompt)
rows to new rows, registered by name, so that a study can measure gap, retrieval and
zero-shot before and after it (docs/design.md §7; how to add one: docs/development.md).

Built in:
- `shift` (Liang et al., "Mind the Gap"): x' = norm(x̂ − ½λΔ/‖Δ‖), y' = norm(ŷ + ½λΔ/‖Δ‖),
  Δ the gap vector of the rows given; prompts move with the texts.
- `ablate` (Schrodi et al., "Two Effects, One Trigger"): drop the k dims with the largest
  |Δ_d| from every side.
- `center`: subtract each modality's mean (of its unit rows) and re-normalise; prompts
  take the text mean (the post-hoc fix of mixed-modality retrieval work).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgap.engine.measures.gap import gap_vector
from mgap.engine.measures.rows import unit_rows


@dataclass(frozen=True)
class Rows:
    """Unit image rows, unit text rows and (when the store has them) unit class prompts."""

    images: np.ndarray
    texts: np.ndarray
    prompts: np.ndarray | None = None

    def each(self, fn: Callable[[np.ndarray], np.ndarray]) -> Rows:
        """`fn` applied to every side (the prompts too, when present)."""
        prompts = None if self.prompts is None else fn(self.prompts)
        return Rows(fn(self.images), fn(self.texts), prompts)


@dataclass(frozen=True)
class Intervention:
    """A named map of rows to rows; `param` is its one knob (λ, k, or None)."""

    name: str
    description: str
    apply: Callable[[Rows, Any], Rows]


#: every intervention by name: `register` adds one
INTERVENTIONS: dict[str, Intervention] = {}


Apply = Callable[[Rows, Any], Rows]


def register(name: str, description: str) -> Callable[[Apply], Apply]:
    """Decorator: `@register("name", "what it does")` on `def f(rows, param) -> Rows` adds
    it to INTERVENTIONS (the function itself is returned unchanged)."""

    def add(apply: Apply) -> Apply:
        INTERVENTIONS[name] = Intervention(name, description, apply)
        return apply

    return add


@register("shift", "move both modalities by ½λ along the unit gap vector, re-normalise")
def shift_rows(rows: Rows, lam: float) -> Rows:
    delta = gap_vector(rows.images, rows.texts)
    length = float(np.linalg.norm(delta))
    step = 0.5 * float(lam) * (delta / length if length > 0 else delta)
    prompts = None if rows.prompts is None else unit_rows(rows.prompts + step)
    return Rows(unit_rows(rows.images - step), unit_rows(rows.texts + step), prompts)


def gap_dim_order(rows: Rows) -> np.ndarray:
    """The dimensions by decreasing |Δ_d| (ties in index order)."""
    return np.argsort(-np.abs(gap_vector(rows.images, rows.texts)), kind="stable")


@register("ablate", "drop the k dimensions with the largest |gap vector| entries, re-normalise")
def ablate_rows(rows: Rows, k: int) -> Rows:
    """The kept columns as they are: every measure re-normalises its rows, and the numbers
    stay bit for bit those `experiment ablate` has always reported."""
    keep = np.sort(gap_dim_order(rows)[int(k) :])
    return rows.each(lambda A: A[:, keep])


@register("center", "subtract each modality's mean, re-normalise (prompts take the text mean)")
def center_rows(rows: Rows, _param: Any = None) -> Rows:
    image_mean, text_mean = rows.images.mean(axis=0), rows.texts.mean(axis=0)
    prompts = None if rows.prompts is None else unit_rows(rows.prompts - text_mean)
    return Rows(unit_rows(rows.images - image_mean), unit_rows(rows.texts - text_mean), prompts)


def unit(images: np.ndarray, texts: np.ndarray, prompts: np.ndarray | None = None) -> Rows:
    """The rows every intervention starts from: each side as unit rows."""
    return Rows(
        unit_rows(images), unit_rows(texts), None if prompts is None else unit_rows(prompts)
    )
