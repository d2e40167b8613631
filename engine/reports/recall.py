"""Recall of one retrieval direction: a part of the retrieval, experiment and `--groups`
reports (its own module so that `groups.py` and `analysis.py` both use it without a cycle)."""

from __future__ import annotations

from dataclasses import dataclass

from mgap.engine.reports.base import Report, key


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
