"""The before/after report of one intervention (`mgap experiment center --json`): gap,
retrieval and zero-shot top-1 on the store as it is and after the intervention, their
differences, and the same per group with `--groups` (docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass

from mgap.engine.reports.analysis import StoreHeader
from mgap.engine.reports.base import Report
from mgap.engine.reports.recall import Recall


@dataclass(kw_only=True)
class Measured(Report):
    """Gap, retrieval and (with class prompts) zero-shot top-1 of one set of rows."""

    l2m: float | None
    l2i: float | None = None
    mean_paired_cosine: float | None
    rmg: float | None
    i2t: Recall
    t2i: Recall
    zeroshot_top1: float | None = None


@dataclass(kw_only=True)
class Deltas(Report):
    """after − before of each headline number (None where either side has none)."""

    l2m: float | None
    l2i: float | None
    mean_paired_cosine: float | None
    rmg: float | None
    i2t_r1: float | None
    i2t_r5: float | None
    t2i_r1: float | None
    t2i_r5: float | None
    zeroshot_top1: float | None


@dataclass(kw_only=True)
class BeforeAfter(Report):
    """One set of rows before and after the intervention."""

    before: Measured
    after: Measured
    delta: Deltas


@dataclass(kw_only=True)
class GroupBeforeAfter(BeforeAfter):
    """One group's images and their captions, before and after (the intervention applied to
    the whole store); `small`: fewer than --min-group images."""

    grouping: str
    group: str
    n: int
    small: bool


@dataclass(kw_only=True)
class InterventionReport(StoreHeader, BeforeAfter):
    """`mgap experiment center --json`."""

    COMMAND = "experiment center"

    intervention: str
    description: str
    n_images: int
    n_texts: int
    groups: list[GroupBeforeAfter] | None = None
