"""The `mgap compare --json` documents: one row per store, and with `--correlate` the gap
metrics against the performance metrics across stores, or with `--paired` the
differences B − A with image-resampling intervals, or with `--by step` the metrics
against the checkpoint step (docs/design.md §7)."""

from __future__ import annotations

from dataclasses import dataclass

from mgap.engine.reports.base import Report


@dataclass(kw_only=True)
class CompareRow(Report):
    """One store's gap and performance on the compared images (None: not available)."""

    store: str
    model: str | None
    dataset: str | None
    split: str | None
    geometry: str
    n_images: int
    n_texts: int
    l2m: float | None
    rmg: float | None
    paired_cosine: float | None
    intra_image_cosine: float | None
    intra_text_cosine: float | None
    i2t_r1: float | None
    i2t_r5: float | None
    t2i_r1: float | None
    t2i_r5: float | None
    zeroshot_top1: float | None
    logit_scale: float | None
    step: int | None
    cached: bool


@dataclass(kw_only=True)
class CorrelationValue(Report):
    """One coefficient with its store-resampling 95% interval and permutation p-value."""

    value: float | None
    interval: list[float | None]
    p_value: float | None


@dataclass(kw_only=True)
class Correlation(Report):
    """A gap metric (x) against a performance metric (y) across the stores."""

    x: str
    y: str
    n: int
    spearman: CorrelationValue
    kendall: CorrelationValue
    pearson: CorrelationValue


@dataclass(kw_only=True)
class CorrelationBlock(Report):
    """Every gap metric against every performance metric, and how they were tested."""

    bootstrap: int
    permutations: int
    seed: int
    definition: str
    skipped: list[str]
    pairs: list[Correlation]


@dataclass(kw_only=True)
class PairedDifference(Report):
    """One metric of A and B on the shared images, B − A and its 95% paired interval."""

    metric: str
    a: float | None
    b: float | None
    difference: float | None
    interval: list[float | None]


@dataclass(kw_only=True)
class PairedBlock(Report):
    """`--paired`: B − A per metric, images (with their captions) resampled together."""

    a: str
    b: str
    n_images: int
    bootstrap: int
    seed: int
    definition: str
    differences: list[PairedDifference]


@dataclass(kw_only=True)
class TrajectorySeries(Report):
    """One metric at each step, in the order of `TrajectoryBlock.steps`."""

    metric: str
    kind: str
    values: list[float]


@dataclass(kw_only=True)
class TrajectoryBlock(Report):
    """`--by step`: the gap and performance metrics against the checkpoint step."""

    by: str
    steps: list[int]
    labels: list[str]
    skipped: list[str]
    series: list[TrajectorySeries]


@dataclass(kw_only=True)
class CompareReport(Report):
    """`mgap compare --json`: the rows, on which images, and the optional analyses."""

    COMMAND = "compare"

    n_stores: int
    shared_ids: int | None
    scope: str
    sort: str | None
    rows: list[CompareRow]
    correlation: CorrelationBlock | None = None
    paired: PairedBlock | None = None
    trajectory: TrajectoryBlock | None = None
