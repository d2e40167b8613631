"""Typed reports: the one definition of each `--json` document, and its JSON Schema.

`REPORTS` maps each command to the type of its `--json` output; `mgap schema COMMAND`
prints `json_schema(REPORTS[COMMAND])`. A field added to a report dataclass appears in
the schema with no further change.
"""

from __future__ import annotations

from mgap.engine.reports.analysis import (
    AblateReport,
    CkaReport,
    GapReport,
    KnnReport,
    MatchReport,
    NeighbourhoodReport,
    RetrievalReport,
    ShiftReport,
    ZeroShotReport,
)
from mgap.engine.reports.base import Report, ReportShapeError
from mgap.engine.reports.compare import CompareReport
from mgap.engine.reports.depth import DepthGapReport  # registers the `gap --layers` variant
from mgap.engine.reports.examples import ExamplesReport
from mgap.engine.reports.interventions import InterventionReport
from mgap.engine.reports.layer_matrix import LayerMatrixReport
from mgap.engine.reports.pipeline import (
    CatalogModel,
    DemoReport,
    ExtractReport,
    ToyTrainingReport,
)
from mgap.engine.reports.schema import json_schema
from mgap.engine.reports.stores import StoreInfo, StoreList
from mgap.engine.reports.studies import (
    AttentionReport,
    ItmReport,
    ObjectBiasReport,
    PlotReport,
    RobustnessReport,
    TraverseReport,
)

REPORTS: dict[str, type[Report]] = {
    cls.COMMAND: cls
    for cls in (
        GapReport,
        RetrievalReport,
        ExamplesReport,
        ZeroShotReport,
        NeighbourhoodReport,
        ShiftReport,
        AblateReport,
        InterventionReport,
        CkaReport,
        KnnReport,
        MatchReport,
        CompareReport,
        StoreInfo,
        StoreList,
        ExtractReport,
        CatalogModel,
        DemoReport,
        ToyTrainingReport,
        RobustnessReport,
        TraverseReport,
        PlotReport,
        ObjectBiasReport,
        AttentionReport,
        ItmReport,
    )
    if cls.COMMAND
}

__all__ = [
    "REPORTS",
    "DepthGapReport",
    "LayerMatrixReport",
    "Report",
    "ReportShapeError",
    "json_schema",
]
