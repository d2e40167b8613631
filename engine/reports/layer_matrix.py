"""The layers x layers alignment report of `mgap cka` / `mgap knn` with `REF@all`.

One document for both commands (docs/metrics.md "Alignment across depth"); the Depth view
of the TUI draws its heatmap from these plain fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from mgap.engine.reports.analysis import CkaReport, Compute, Estimate, KnnReport
from mgap.engine.reports.base import Report


@dataclass(kw_only=True)
class LayerPair(Report):
    """One cell of the matrix: `row` is a layer of the first REF, `column` of the second
    (absolute layer indices), `value` the score there."""

    row: int
    column: int
    value: float


@dataclass(kw_only=True)
class LayerMatrixReport(Report):
    """`mgap cka|knn A@all B@all --json`: every layer of A against every layer of B.

    - `measure`: "cka" or "mutual_knn" (what `matrix` holds).
    - `names`: the two REFs without their @ part (`store.h5:image`, `store.h5:text`).
    - `space`: "raw" (the pooled state as it is) or "lens" (through the tower's head).
    - `n`: the shared image rows used; `dims`: the vector width of each REF.
    - `rows`, `columns`: absolute layer indices of A and of B, in the order asked.
    - `matrix`: len(rows) lists of len(columns) values; `matrix[i][j]` compares layer
      `rows[i]` of A with layer `columns[j]` of B (None where undefined).
    - `estimator`: "biased" or "unbiased" (CKA), "mutual-knn" (k-NN); `kernel`: "linear"
      or "rbf" (CKA only); `k`, `chance` (k/(n−1)) and the `cknna` matrix: k-NN only
      (`cknna` is absent when sampled).
    - `best`: the cell with the highest value (the first in row-major order on ties), the
      "best layer pair" as the Platonic Representation Hypothesis reports it; `best_cknna`
      the same for `cknna`.
    - `sigma`: RBF bandwidth per layer, {"rows": [...], "columns": [...]}.
    - `estimate`: exact, or sampled (`--sample`) with `interval["matrix"]` holding a
      [low, high] pair per cell.
    """

    measure: str
    names: list[str]
    space: str
    n: int
    dims: list[int]
    rows: list[int]
    columns: list[int]
    matrix: list[list[float | None]]
    estimator: str
    kernel: str | None = None
    k: int | None = None
    chance: float | None = None
    cknna: list[list[float | None]] | None = None
    best: LayerPair | None = None
    best_cknna: LayerPair | None = None
    sigma: dict[str, list[float]] | None = None
    estimate: Estimate | None = None
    compute: Compute | None = None


CkaReport.VARIANTS = ((LayerMatrixReport, "rows"),)
KnnReport.VARIANTS = ((LayerMatrixReport, "rows"),)
