"""The analysis reports: gap, retrieval, zero-shot, neighbourhoods, experiments, CKA, k-NN, match.

Declared fields are the keys docs/design.md §6 and docs/commands.md document; see `base.Report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.base import Report, key
from mgap.engine.reports.groups import GroupsReport
from mgap.engine.reports.recall import Recall


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

    accuracy: float | None
    std: float | None = None
    n_per_side: int
    folds: int


@dataclass(kw_only=True)
class GapMetrics(Report):
    """The docs/design.md §7 gap metrics of a set of pairs."""

    n_images: int
    n_texts: int
    dim: int | None = None
    l2m: float | None
    l2i: float | None
    mean_paired_cosine: float | None
    intra_image_cosine: float | None
    intra_text_cosine: float | None
    rmg: float | None
    top_dims: list[TopDim] | None = None
    separability: Separability | None = None


@dataclass(kw_only=True)
class NamedGroup(Report):
    """Which group of images a row describes: a primary category or a supercategory."""

    name: str = ""
    kind: str = "category"


@dataclass(kw_only=True)
class CategoryRow(GapMetrics, NamedGroup):
    """The gap metrics of the pairs of one primary category or supercategory."""


@dataclass(kw_only=True)
class CategoryTable(Report):
    """A category x category table (image side of the row, text side of the column); a
    sampled table's seed, interval and per-category counts are in `extra`."""

    definition: str
    names: list[str]
    matrix: list[list[float | None]]
    mode: str
    n: int


@dataclass(kw_only=True)
class RankedCategory(Report):
    """One primary category in the ranking by L2M."""

    rank: int
    name: str
    l2m: float | None
    rmg: float | None


@dataclass(kw_only=True)
class Compute(Report):
    """Where a quadratic analysis ran (`Backend.describe()`, docs/design.md §10)."""

    device: str
    engine: str
    precision: str
    note: str | None = None


@dataclass(kw_only=True)
class TangentGap(Report):
    """The gap of log-mapped rows keeping their norms (distances from the origin)."""

    centroid_distance: float
    mean_paired_distance: float
    mean_norm_image: float
    mean_norm_text: float


@dataclass(kw_only=True)
class Entailment(Report):
    """How often a caption's entailment cone holds its image (MERU)."""

    definition: str
    n_pairs: int
    inside: float
    mean_angle_minus_aperture: float
    mean_angle: float
    mean_half_aperture: float


@dataclass(kw_only=True)
class Geodesic(Report):
    """Mean geodesic distances: of the true pairs, and sampled within and across modalities."""

    paired: float
    image_text: float | None
    image_image: float | None
    text_text: float | None
    sampled_pairs: int


@dataclass(kw_only=True)
class Histogram(Report):
    """Counts per modality on shared bin edges."""

    edges: list[float]
    image: list[int]
    text: list[int]


@dataclass(kw_only=True)
class OriginDistance(Report):
    """Distance from the hyperboloid's origin per modality."""

    image: float
    text: float
    image_quartiles: list[float]
    text_quartiles: list[float]
    histogram: Histogram


@dataclass(kw_only=True)
class HyperbolicReport(Report):
    """The hyperbolic block of `mgap gap` on a Lorentz store (and the TUI's Hyperbolic view)."""

    curvature: float
    score: str
    tangent_gap_definition: str
    tangent_gap: GapMetrics
    tangent_gap_unnormalised: TangentGap
    entailment: Entailment
    geodesic: Geodesic
    origin_distance: OriginDistance


@dataclass(kw_only=True)
class GapText(Report):
    """Which caption rows the gap is over, and what its text side is."""

    captions: str = "all"
    text_side: str = "captions"
    n_text_rows: int | None = None
    templates_per_class: int | None = None


@dataclass(kw_only=True)
class GapReport(GapMetrics, GapText, StoreHeader):
    """`mgap gap --json`: the gap of a store, optionally per category."""

    COMMAND = "gap"

    compute: Compute | None = None
    by_category: list[CategoryRow] | None = None
    category_centroid_distances: CategoryTable | None = None
    category_pairwise_distances: CategoryTable | None = None
    category_ranking: list[RankedCategory] | None = None
    hyperbolic: HyperbolicReport | None = None
    groups: GroupsReport | None = None


@dataclass(kw_only=True)
class Estimate(Report):
    """Exact (`mode` "exact", n rows), or sampled from n seeded rows with a 95 % interval (a
    retrieval estimate names the queries drawn; a CKA estimate its groups and bandwidth)."""

    mode: str
    n: int
    seed: int | None = None
    interval_level: float | None = None
    interval_method: str | None = None
    n_image_queries: int | None = None
    n_text_queries: int | None = None
    groups: int | None = None
    group_rows: int | None = None
    interval: dict[str, Any] | None = None
    bandwidth: str | None = None
    note: str | None = None


@dataclass(kw_only=True)
class RetrievalCategory(Report):
    """Recall of the queries of one category, ranked against the whole gallery."""

    name: str
    kind: str
    n_images: int
    n_texts: int | None = None
    i2t: Recall
    t2i: Recall


@dataclass(kw_only=True)
class RetrievalReport(StoreHeader):
    """`mgap retrieval --json`: image->text and text->image recall."""

    COMMAND = "retrieval"

    score: str = "cosine"
    score_curvature: float | None = None
    captions: str = "all"
    n_images: int
    n_texts: int
    ties: str
    compute: Compute | None = None
    cached: bool | None = None
    estimate: Estimate | None = None
    i2t: Recall
    t2i: Recall
    by_category: list[RetrievalCategory] | None = None
    groups: GroupsReport | None = None


@dataclass(kw_only=True)
class ClassAccuracy(Report):
    """Zero-shot accuracy of the images of one class."""

    name: str
    n: int
    accuracy: float | None
    recall: float | None = None
    n_predicted: int
    average_precision: float | None = None


@dataclass(kw_only=True)
class ZeroShotReport(StoreHeader):
    """`mgap zeroshot --json`: nearest class prompt, overall and per class."""

    COMMAND = "zeroshot"

    score: str = "cosine"
    score_curvature: float | None = None
    label_set: str
    accuracy: float | None
    top5_accuracy: float | None = None
    mean_class_accuracy: float | None
    mean_per_class_recall: float | None = None
    n: int
    n_classes: int | None = None
    multi_label: bool
    per_class: list[ClassAccuracy]
    mean_average_precision: float | None = None
    mean_average_precision_present: float | None = None
    map_definition: str | None = None
    groups: GroupsReport | None = None


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
    similarity: str = "mean_pairwise"
    exclude_self: bool = False
    mean_distance: float | None
    chance: float | None = None
    n_categories: int
    per_category: list[CategoryDistance]


@dataclass(kw_only=True)
class ExperimentStep(Report):
    """Gap and retrieval after one shift or ablation step."""

    l2m: float | None
    l2i: float | None = None
    mean_paired_cosine: float | None
    rmg: float | None
    i2t: Recall
    t2i: Recall
    infonce: float | None = None


@dataclass(kw_only=True)
class ShiftAt(Report):
    """Which λ a shift step is at."""

    lam: float = key("lambda", default=0.0)


@dataclass(kw_only=True)
class ShiftStep(ExperimentStep, ShiftAt):
    """One λ of the shift along the gap vector."""


@dataclass(kw_only=True)
class AblatedDims(Report):
    """Which gap dimensions an ablation step dropped (the top k by |Δ_d|)."""

    k: int = 0
    dropped: list[int] | None = None


@dataclass(kw_only=True)
class AblateStep(ExperimentStep, AblatedDims):
    """The top-k gap dimensions dropped."""


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
class NullScore(Report):
    """One score against its permutation null: p = (1 + #{null >= observed}) / (1 + N) and
    `excess` = observed - null mean (docs/metrics.md)."""

    refs: list[str] | None = None
    observed: float
    mean: float
    sd: float
    p_value: float
    excess: float
    permutations: int
    seed: int


@dataclass(kw_only=True)
class PermutationNull(Report):
    """`--permutations N`: the same estimator on the same rows with one side's rows shuffled
    N times; one score per CKA pair (`pairs`) or per k-NN score."""

    permutations: int
    seed: int
    n: int
    permuted: str
    pairs: list[NullScore] | None = None
    mutual_knn: NullScore | None = None
    cknna: NullScore | None = None


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
    null: PermutationNull | None = None


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
    null: PermutationNull | None = None


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
