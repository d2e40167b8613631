"""The analysis reports: gap, retrieval, zero-shot, neighbourhoods, experiments, CKA, k-NN, match.

Declared fields are the keys docs/design.md §6 and docs/commands.md document; see `base.Report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.base import Report, key


@dataclass(kw_only=True)
class StoreHeader(Report):
    """Which store a single-store report describes (`mgap.engine.studies.pairs.store_header`)."""

    store: str
    model: str | None
    dataset: str | None
    split: str | None
    status: str | None


@dataclass(kw_only=True)
class TopDim(Report):
    """One embedding dimension ranked by its share of the squared gap L2M²."""

    dim: int
    delta: float
    share: float
    cumulative_share: float


@dataclass(kw_only=True)
class Separability(Report):
    """Cross-validated logistic-regression accuracy telling image from text embeddings."""

    accuracy: float
    n_per_side: int
    folds: int


@dataclass(kw_only=True)
class GapMetrics(Report):
    """The docs/design.md §7 gap metrics of a set of pairs."""

    n_images: int
    n_texts: int
    l2m: float | None
    l2i: float | None
    mean_paired_cosine: float | None
    intra_image_cosine: float | None
    intra_text_cosine: float | None
    rmg: float | None
    top_dims: list[TopDim] | None = None


@dataclass(kw_only=True)
class CategoryRow(GapMetrics):
    """The gap metrics of the pairs of one primary category or supercategory."""

    name: str = ""
    kind: str = "category"


@dataclass(kw_only=True)
class GapReport(StoreHeader, GapMetrics):
    """`mgap gap --json`: the gap of a store, optionally per category."""

    COMMAND = "gap"

    captions: str = "all"
    dim: int = 0
    text_side: str = "captions"
    n_text_rows: int | None = None
    templates_per_class: int | None = None
    separability: Separability | None = None
    compute: dict[str, Any] | None = None
    by_category: list[CategoryRow] | None = None
    hyperbolic: dict[str, Any] | None = None
    groups: dict[str, Any] | None = None


@dataclass(kw_only=True)
class Recall(Report):
    """Recall at 1/5/10 and ranks of one retrieval direction (CLIP_benchmark hit rates)."""

    r1: float | None = key("R@1")
    r5: float | None = key("R@5")
    r10: float | None = key("R@10")
    median_rank: float | None = None
    mean_rank: float | None = None
    n: int | None = None
    interval: dict[str, list[float | None]] | None = None


@dataclass(kw_only=True)
class RetrievalCategory(Report):
    """Recall of the queries of one category, ranked against the whole gallery."""

    name: str
    kind: str
    n_images: int
    i2t: Recall
    t2i: Recall


@dataclass(kw_only=True)
class RetrievalReport(StoreHeader):
    """`mgap retrieval --json`: image->text and text->image recall."""

    COMMAND = "retrieval"

    n_images: int
    n_texts: int
    ties: str
    i2t: Recall
    t2i: Recall
    score: str = "cosine"
    captions: str = "all"
    compute: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None
    by_category: list[RetrievalCategory] | None = None
    groups: dict[str, Any] | None = None


@dataclass(kw_only=True)
class ClassAccuracy(Report):
    """Zero-shot accuracy of the images of one class."""

    name: str
    n: int
    accuracy: float | None
    n_predicted: int
    recall: float | None = None
    average_precision: float | None = None


@dataclass(kw_only=True)
class ZeroShotReport(StoreHeader):
    """`mgap zeroshot --json`: nearest class prompt, overall and per class."""

    COMMAND = "zeroshot"

    label_set: str
    accuracy: float | None
    mean_class_accuracy: float | None
    n: int
    multi_label: bool
    per_class: list[ClassAccuracy]
    score: str = "cosine"
    top5_accuracy: float | None = None
    mean_per_class_recall: float | None = None
    mean_average_precision: float | None = None
    mean_average_precision_present: float | None = None
    groups: dict[str, Any] | None = None


@dataclass(kw_only=True)
class CategoryDistance(Report):
    """Kendall-tau distance of one category's image and text neighbour rankings."""

    name: str
    distance: float | None


@dataclass(kw_only=True)
class NeighbourhoodReport(StoreHeader):
    """`mgap neighbours --json`: do images and texts rank the categories alike?"""

    COMMAND = "neighbours"

    text_side: str
    mean_distance: float | None
    n_categories: int
    per_category: list[CategoryDistance]
    similarity: str = "mean_pairwise"
    exclude_self: bool = False
    chance: float | None = None


@dataclass(kw_only=True)
class ExperimentStep(Report):
    """Gap and retrieval after one shift or ablation step."""

    l2m: float | None
    rmg: float | None
    mean_paired_cosine: float | None
    i2t: Recall
    t2i: Recall
    infonce: float | None = None


@dataclass(kw_only=True)
class ShiftStep(ExperimentStep):
    """One λ of the shift along the gap vector."""

    lam: float = key("lambda", default=0.0)
    l2i: float | None = None


@dataclass(kw_only=True)
class AblateStep(ExperimentStep):
    """The top-k gap dimensions dropped."""

    k: int = 0
    l2i: float | None = None
    dropped: list[int] | None = None


@dataclass(kw_only=True)
class ShiftReport(StoreHeader):
    """`mgap experiment shift --json`."""

    COMMAND = "experiment shift"

    logit_scale: float
    steps: list[ShiftStep]


@dataclass(kw_only=True)
class AblateReport(StoreHeader):
    """`mgap experiment ablate --json`."""

    COMMAND = "experiment ablate"

    steps: list[AblateStep]


@dataclass(kw_only=True)
class Compute(Report):
    """Where a quadratic analysis ran (`Backend.describe()`, docs/design.md §10)."""

    device: str
    engine: str
    precision: str
    note: str | None = None


@dataclass(kw_only=True)
class Estimate(Report):
    """Exact (`mode` "exact", n rows), or sampled from n seeded rows with a 95 % interval
    per number under `interval` (`mgap.engine.measures.sampling`)."""

    mode: str
    n: int
    seed: int | None = None
    interval_level: float | None = None
    interval_method: str | None = None
    groups: int | None = None
    group_rows: int | None = None
    interval: dict[str, Any] | None = None
    bandwidth: str | None = None
    note: str | None = None


@dataclass(kw_only=True)
class CkaReport(Report):
    """`mgap cka --json`: the CKA matrix of two or more representations."""

    COMMAND = "cka"

    names: list[str]
    n: int
    matrix: list[list[float | None]]
    kernel: str = "linear"
    estimator: str = "biased"
    dims: list[int] | None = None
    compute: Compute | None = None
    batch_size: int | None = None
    estimate: Estimate | None = None
    chance: list[list[float | None]] | None = None
    sigma: list[float] | None = None


@dataclass(kw_only=True)
class KnnReport(Report):
    """`mgap knn --json`: mutual k-NN alignment (and CKNNA) of two representations."""

    COMMAND = "knn"

    names: list[str]
    k: int
    n: int
    mutual_knn: float | None
    cknna: float | None = None
    chance: float | None = None
    compute: Compute | None = None
    estimate: Estimate | None = None


@dataclass(kw_only=True)
class MatchMethod(Report):
    """One matching method's result: matching accuracy (one-to-one), top-k hit rates for the
    scoring baselines, the FAQ run for QAP, or a note when the method does not apply."""

    accuracy: float | None
    top1: float | None = None
    top5: float | None = None
    top10: float | None = None
    objective: float | None = None
    kernel: str | None = None
    tol: float | None = None
    restarts: int | None = None
    workers: int | None = None
    seconds: float | None = None
    note: str | None = None


@dataclass(kw_only=True)
class MatchReport(Report):
    """`mgap match --json`: blind matching of query images to captions through a base set."""

    COMMAND = "match"

    names: list[str]
    accuracy: float | None
    n_base: int
    n_query: int
    methods: dict[str, MatchMethod]
    method: str = "qap"
    n: int | None = None
    chance: float | None = None
    seed: int | None = None
    base_selection: str | None = None
    kernel: str | None = None
    stretch: bool | None = None
    stretch_definition: str | None = None
