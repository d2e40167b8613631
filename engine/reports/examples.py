"""The `mgap examples --json` document: the images (or captions) that carry the gap."""

from __future__ import annotations

from dataclasses import dataclass

from mgap.engine.reports.analysis import StoreHeader
from mgap.engine.reports.base import Report


@dataclass(kw_only=True)
class ExampleMatch(Report):
    """One candidate of the other side: a true pair, or a retrieved one.

    `row` is its row in the store (caption row, or image row with `--side text`); `label`
    the caption text or the image id; `category` the category of its image."""

    row: int
    label: str
    cosine: float
    true: bool
    category: str | None = None


@dataclass(kw_only=True)
class Example(Report):
    """One query: an image (or a caption), its true partners and what retrieval returns.

    `rank` is the expected rank of its best true partner, ties broken at random as in
    `mgap retrieval` (`above` wrong candidates score higher, `tied` tie with it)."""

    row: int
    id: str
    path: str | None
    text: str | None
    category: str | None
    pair_cosine: float
    rank: float
    above: int
    tied: int
    centroid_distance: float | None
    true: list[ExampleMatch]
    retrieved: list[ExampleMatch]


@dataclass(kw_only=True)
class ExamplesReport(StoreHeader):
    """`mgap examples --json`: the worst (or best) examples of a category by one sort key."""

    COMMAND = "examples"

    side: str
    category: str | None
    sort: str
    order: str
    k: int
    n_candidates: int
    ranks: str
    examples: list[Example]
