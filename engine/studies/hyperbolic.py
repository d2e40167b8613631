"""The hyperbolic block of a Lorentz store's gap report, typed (the geometry is
`mgap.engine.measures.hyperbolic`): tangent-space gap, geodesic distances, distance from the
origin per modality and the entailment-cone statistic."""

from __future__ import annotations

from typing import Any

import numpy as np

from mgap.engine.measures.hyperbolic import hyperbolic_metrics
from mgap.engine.reports.analysis import (
    Entailment,
    GapMetrics,
    Geodesic,
    Histogram,
    HyperbolicReport,
    OriginDistance,
    Separability,
    TangentGap,
    TopDim,
)


def gap_metrics_part(metrics: dict, cls: type[GapMetrics] = GapMetrics, **named) -> GapMetrics:
    """A `gap_metrics` result (or one row of the category breakdown) as its report type."""
    plain: dict[str, Any] = {
        k: v for k, v in metrics.items() if k not in ("top_dims", "separability")
    }
    if "separability" in metrics:
        plain["separability"] = Separability(**metrics["separability"])
    return cls.build(**named, **plain, top_dims=[TopDim(**row) for row in metrics["top_dims"]])


def hyperbolic_report(
    X: np.ndarray, Y: np.ndarray, text_image_index: np.ndarray, c: float, *, top_k: int = 10
) -> HyperbolicReport:
    """The hyperbolic analysis of images X and captions Y on the hyperboloid of curvature −c."""
    doc = hyperbolic_metrics(X, Y, text_image_index, c, top_k=top_k)
    origin = doc["origin_distance"]
    return HyperbolicReport(
        curvature=doc["curvature"],
        score=doc["score"],
        tangent_gap_definition=doc["tangent_gap_definition"],
        tangent_gap=gap_metrics_part(doc["tangent_gap"]),
        tangent_gap_unnormalised=TangentGap(**doc["tangent_gap_unnormalised"]),
        entailment=Entailment(**doc["entailment"]),
        geodesic=Geodesic(**doc["geodesic"]),
        origin_distance=OriginDistance(
            **{k: v for k, v in origin.items() if k != "histogram"},
            histogram=Histogram(**origin["histogram"]),
        ),
    )
