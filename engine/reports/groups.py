"""The `groups` part of the gap, retrieval, zero-shot and robustness reports (`--groups`).

A row carries the metric fields of its command's ungrouped document (a row of `mgap gap`
has the gap fields, one of `mgap retrieval` its `i2t`/`t2i` recall...), so each metric
field is optional: a row writes only those its command computed, in the order it computed
them (see `engine/studies/group_report.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.base import Report, declared, json_key, key
from mgap.engine.reports.recall import Recall


def attribute(report: Report, name: str) -> Any:
    """The value of the field whose JSON key is `name` (`R@1`, `i2t_R@1`...)."""
    fields = {json_key(f): f.name for f in declared(type(report))}
    return getattr(report, fields[name])


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
class GroupRow(Report):
    """One group of one grouping (and, in `mgap robustness`, one setting): its images, the
    metrics its command computes, their bootstrap intervals (`ci`, by metric key) and
    whether it is too small to rank."""

    setting: str | None = None
    grouping: str
    group: str
    n: int
    # gap (and robustness)
    dim: int | None = None
    n_images: int | None = None
    n_texts: int | None = None
    l2m: float | None = None
    l2i: float | None = None
    mean_paired_cosine: float | None = None
    intra_image_cosine: float | None = None
    intra_text_cosine: float | None = None
    rmg: float | None = None
    # retrieval
    i2t: Recall | None = None
    t2i: Recall | None = None
    # zero-shot
    accuracy: float | None = None
    top5_accuracy: float | None = None
    mean_class_accuracy: float | None = None
    # robustness
    top1: float | None = None
    top5: float | None = None
    error: float | None = None
    clean_cosine: float | None = None
    i2t_r1: float | None = key("i2t_R@1", default=None)
    t2i_r1: float | None = key("t2i_R@1", default=None)
    ci: dict[str, list[float | None]]
    small: bool
    delta: RobustnessValues | None = None

    def value(self, metric: str) -> Any:
        """A metric by its key (`l2m`, `i2t.R@1`: a dot reads into a recall part)."""
        head, dot, tail = metric.partition(".")
        value = attribute(self, head)
        return attribute(value, tail) if dot and value is not None else value


@dataclass(kw_only=True)
class RankedGroup(Report):
    """A ranked group and its value of the summary's metric."""

    group: str
    value: float


@dataclass(kw_only=True)
class GroupSummary(Report):
    """The worst and best ranked groups of a grouping (and setting) by one metric."""

    grouping: str
    setting: str | None = None
    metric: str
    higher_is_better: bool
    n_ranked: int
    n_small: int
    worst: RankedGroup | None = None
    best: RankedGroup | None = None
    difference: float | None = None
    ratio: float | None = None


@dataclass(kw_only=True)
class GroupsMissing(Report):
    """How a groups CSV covers the store: images it has no row for, rows naming no image."""

    file: str
    key_column: str
    images_without_row: int
    rows_without_image: int


@dataclass(kw_only=True)
class GroupsReport(Report):
    """`groups` of a report: the bootstrap settings, per-group rows, the worst/best summary
    and the CSVs' coverage."""

    min_n: int
    bootstrap: int
    seed: int
    level: float
    ci: str
    rows: list[GroupRow]
    summary: list[GroupSummary]
    missing: list[GroupsMissing]
