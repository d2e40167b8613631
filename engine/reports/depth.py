"""`mgap gap --layers --json`: the modality gap of every stored layer (docs/design.md §7).

A variant of the `gap` command's document (the key `layers` tells it from a plain gap
report), so `mgap schema gap` describes both.
"""

from __future__ import annotations

from dataclasses import dataclass

from mgap.engine.reports.analysis import Compute, Estimate, GapReport, StoreHeader
from mgap.engine.reports.base import Report


@dataclass(kw_only=True)
class DepthGapRow(Report):
    """One layer: the gap metrics of its pooled image and text vectors, and R@1.

    `layer` is the absolute hidden-state index (0 = the input to block 1, k = the output
    of block k); image layer k is paired with text layer k. `l2m`, `l2i`,
    `mean_paired_cosine`, `intra_image_cosine`, `intra_text_cosine` and `rmg` are the
    plain `mgap gap` metrics of that layer's vectors (docs/metrics.md, "Gap across
    depth"). `i2t_r1` / `t2i_r1` are image->text and text->image recall at 1 (fractions,
    cosine score); `i2t_r1_interval` / `t2i_r1_interval` are their 95 % [low, high]
    bootstrap intervals when the queries were sampled, absent when exact (the report's
    `retrieval` entry says which)."""

    layer: int
    dim: int
    l2m: float
    l2i: float
    mean_paired_cosine: float
    intra_image_cosine: float | None
    intra_text_cosine: float | None
    rmg: float
    i2t_r1: float | None
    t2i_r1: float | None
    i2t_r1_interval: list[float | None] | None = None
    t2i_r1_interval: list[float | None] | None = None


@dataclass(kw_only=True)
class DepthGapReport(StoreHeader):
    """`mgap gap --layers --json`: one row per stored layer, shallow to deep.

    `space` is "lens" (each pooled state through its tower's final norm and projection,
    in the joint space) or "raw" (the pooled state as it is; LLaVA's language-model
    states); `pooling` and `lens` give the store's definitions per side ("image",
    "text"). `n_images` / `n_texts` count the analysed rows (`captions` "all" or
    "first"). `retrieval` says whether R@1 is exact or sampled (its queries, seed and
    interval method); `compute` is the backend; `layers` the rows (`DepthGapRow`)."""

    space: str
    pooling: dict[str, str]
    lens: dict[str, str]
    captions: str = "all"
    n_images: int
    n_texts: int
    score: str = "cosine"
    retrieval: Estimate
    compute: Compute
    layers: list[DepthGapRow]


GapReport.VARIANTS = ((DepthGapReport, "layers"),)
