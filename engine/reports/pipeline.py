"""The documents of the pipeline commands: `mgap extract`, `mgap models`, `mgap demo`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.base import Report


@dataclass(kw_only=True)
class ExtractedStore(Report):
    """One store an extraction wrote or found: what `run_extraction` returns."""

    store: str
    model: str
    status: str
    n_images: int
    n_texts: int
    skipped: int
    seconds: float
    images_per_s: float
    device: str
    dtype: str
    note: str = ""


@dataclass(kw_only=True)
class ExtractReport(Report):
    """`mgap extract --json`: the overall status and one entry per store."""

    COMMAND = "extract"

    status: str
    stores: list[ExtractedStore]


@dataclass(kw_only=True)
class CatalogModel(Report):
    """One model of `mgap models --json` (a JSON array of these)."""

    # the one catalog row: engine/models/catalog.py builds it, the TUI's Models pane lists it

    COMMAND = "models"
    AS_LIST = True

    spec: str
    family: str
    description: str
    image: bool
    text: bool
    recommended: bool
    #: None where unknown: a spec typed into the TUI's filter box
    available_offline: bool | None
    #: the local folder/file when available offline, else where the weights come from
    where: str

    @property
    def sides(self) -> str:
        """ "image+text", "image", "text" or "" (unknown)."""
        return "+".join(side for side in ("image", "text") if getattr(self, side))


@dataclass(kw_only=True)
class DemoStore(Report):
    """The demo's summary of one store: gap, retrieval, zero-shot and object bias."""

    model: str
    store: str
    n_images: int
    n_texts: int
    gap: dict[str, float | None]
    retrieval: dict[str, dict[str, float | None]]
    zero_shot: dict[str, float | None]
    object_bias: dict[str, float | None]


@dataclass(kw_only=True)
class DemoReport(Report):
    """`mgap demo --json`: the toy model, its training settings and its two stores."""

    COMMAND = "demo"

    toy_model: str
    trained_now: bool
    training: dict[str, Any]
    store_dir: str
    stores: list[DemoStore]


@dataclass(kw_only=True)
class ToyTrainingReport(Report):
    """`mgap train-toy --json` (one model): where it was saved and its training metrics."""

    COMMAND = "train-toy"

    model: str
    folder: str
    loss_first_epoch: float
    loss_last_epoch: float
    loss_per_epoch: list[float]
    chance_loss: float | None = None
    zero_shot_shape_accuracy: float
    chance_accuracy: float
    zero_shot_attribute_accuracy: dict[str, float]
    attribute_chance_accuracy: dict[str, float] | None = None
    n_test: int
    final_temperature: float | None = None
    steps: int | None = None
    seconds: float
    threads: int | None = None


@dataclass(kw_only=True)
class ToySweepReport(Report):
    """`mgap train-toy --sweep KIND --json`: one row per trained toy."""

    sweep: str
    base: dict[str, Any]
    rows: list[dict[str, Any]]


ToyTrainingReport.VARIANTS = ((ToySweepReport, "sweep"),)
