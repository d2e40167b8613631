"""`--score`: the similarity retrieval and zero-shot rank by (engine/analysis/scores.py)."""

from __future__ import annotations

import typer

SCORE_OPT = typer.Option(
    None,
    "--score",
    help="cosine (Euclidean stores), lorentz_distance (negative geodesic distance: the "
    "default on Lorentz stores), space_cosine (cosine of the space components) or "
    "atmg_angle (ATMG's exterior-angle scores, one per direction).",
)
