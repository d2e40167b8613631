"""The documents of the study commands: robustness, traverse, plot and object bias."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.analysis import StoreHeader
from mgap.engine.reports.base import Report, key


@dataclass(kw_only=True)
class RobustnessValues(Report):
    """The metrics of one perturbation setting (or their change from clean)."""

    top1: float | None
    top5: float | None
    error: float | None
    mean_paired_cosine: float | None
    clean_cosine: float | None
    l2m: float | None
    rmg: float | None
    i2t_r1: float | None = key("i2t_R@1")
    t2i_r1: float | None = key("t2i_R@1")


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
    groups: dict[str, Any] | None = None


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
class AttentionReport(StoreHeader):
    """`mgap attention --json`: CLS->patch attention entropy per image, model and category."""

    COMMAND = "attention"

    layer: int
    n_layers: int
    query: str
    coverage: Any
    entropy_definition: str
    sample: dict[str, Any]
    n_images: int
    grid: list[int] | None
    entropy: dict[str, Any]
    uniform_entropy: dict[str, Any]
    relative_entropy: dict[str, Any]
    by_category: dict[str, Any]
    images: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


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
    retrieval: dict[str, Any] | None = None
    n_captions: int | None = None
    zeroshot: dict[str, Any] | None = None
