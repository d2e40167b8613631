"""The documents of the study commands: robustness, traverse, plot and object bias."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.analysis import StoreHeader
from mgap.engine.reports.base import Report, key
from mgap.engine.reports.groups import GroupsReport, RobustnessValues


@dataclass(kw_only=True)
class SettingName(Report):
    """Which perturbation setting a row is, and over how many images."""

    setting: str
    n_images: int


@dataclass(kw_only=True)
class RobustnessSetting(RobustnessValues, SettingName):
    """One setting's metrics and their change from clean (`delta`)."""

    delta: RobustnessValues


@dataclass(kw_only=True)
class RobustnessReport(StoreHeader):
    """`mgap robustness --json`: gap, retrieval and zero-shot per perturbation setting."""

    COMMAND = "robustness"

    score: str = "cosine"
    score_curvature: float | None = None
    captions: str
    n_images: int
    n_texts: int
    perturb_seed: int
    zero_shot: str | None
    settings: list[RobustnessSetting]
    groups: GroupsReport | None = None


@dataclass(kw_only=True)
class TraverseText(Report):
    """One of a traversal step's nearest texts (`row` None: the origin, "[ROOT]")."""

    text: str
    row: int | None
    distance: float
    entails: bool


@dataclass(kw_only=True)
class TraverseStep(Report):
    """One point of the geodesic from the image (t = 1) to the origin (t = 0)."""

    step: int
    t: float
    origin_distance: float
    nearest: list[TraverseText]


@dataclass(kw_only=True)
class TraverseReport(StoreHeader):
    """`mgap traverse --json`: an image's geodesic to the origin, nearest texts per step."""

    COMMAND = "traverse"

    score: str
    curvature: float
    image: str
    image_row: int
    image_captions: list[str]
    candidates: str
    n_candidates: int
    entailed_only: bool
    k: int
    steps: list[TraverseStep]


@dataclass(kw_only=True)
class PlotReport(Report):
    """`mgap plot --json`: what the projection drew (the picture is the text output or PNG)."""

    COMMAND = "plot"

    method: str
    n_shown: int
    n_total: int
    n_images: int
    n_texts: int
    params: dict[str, Any]
    seconds: float
    cached: bool
    model: str | None
    dataset: str | None
    png: str | None


@dataclass(kw_only=True)
class Separation(Report):
    """Mean cosine of pairs in the same class, in different classes, and their difference."""

    within: float | None
    across: float | None
    separation: float | None
    n: int
    n_classes: int


@dataclass(kw_only=True)
class ModalityBias(Report):
    """One modality's separations by object and by each attribute, and its object bias."""

    objects: Separation = key("object")
    attributes: dict[str, Separation]
    mean_attribute_separation: float | None
    object_bias: float | None


@dataclass(kw_only=True)
class ObjectBiasReport(Report):
    """`mgap object-bias --json`: object vs attribute separation per side, zero-shot accuracies."""

    COMMAND = "object-bias"

    store: str
    model: str | None
    dataset: str | None
    split: str | None
    attribute_keys: list[str]
    image: ModalityBias | None = None
    text: ModalityBias | None = None
    zero_shot: dict[str, float | None]


@dataclass(kw_only=True)
class Spread(Report):
    """n, mean, sample standard deviation (ddof 1), min and max of some entropies (only n
    when there are none)."""

    n: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(kw_only=True)
class AttentionSample(Report):
    """Which images were asked for: how many, the seed, out of how many in the store."""

    requested: int
    seed: int
    of: int


@dataclass(kw_only=True)
class AttentionImage(Report):
    """One image's head-averaged attention map (rows x cols, sums to 1) and its entropy."""

    id: str
    path: str
    category: str
    grid: list[int]
    patches: int
    entropy: float
    uniform_entropy: float
    map: list[list[float]]


@dataclass(kw_only=True)
class SkippedImage(Report):
    """A sampled image that could not be read, and why."""

    id: str
    path: str
    reason: str


@dataclass(kw_only=True)
class AttentionReport(StoreHeader):
    """`mgap attention --json`: CLS->patch attention entropy per image, model and category."""

    COMMAND = "attention"

    layer: int
    n_layers: int
    query: str
    coverage: str
    entropy_definition: str
    sample: AttentionSample
    n_images: int
    grid: list[int] | None
    entropy: Spread
    uniform_entropy: Spread
    relative_entropy: Spread
    by_category: dict[str, Spread]
    images: list[AttentionImage]
    skipped: list[SkippedImage]


@dataclass(kw_only=True)
class ItmRecall(Report):
    """Recall at 1/5/10 of one direction of ITM-head retrieval, over n queries."""

    r1: float = key("R@1")
    r5: float = key("R@5")
    r10: float = key("R@10")
    n: int


@dataclass(kw_only=True)
class ItmRetrieval(Report):
    """Image->text and text->image recall ranked by the ITM head."""

    i2t: ItmRecall
    t2i: ItmRecall


@dataclass(kw_only=True)
class ItmZeroShot(Report):
    """Zero-shot top-1/top-5 accuracy ranked by the ITM head over the class prompts."""

    top1: float | None
    top5: float | None
    error: float | None
    n: int
    template: str
    n_classes: int


@dataclass(kw_only=True)
class ItmReport(StoreHeader):
    """`mgap itm --json`: retrieval and zero-shot ranked by a ViLT image-text matching head."""

    COMMAND = "itm"

    head: str
    limit: int | None
    n_images: int
    pairs: int
    ties: str
    seconds: float
    retrieval: ItmRetrieval | None = None
    n_captions: int | None = None
    zeroshot: ItmZeroShot | None = None
