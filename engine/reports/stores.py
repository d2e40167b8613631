"""The store documents: `mgap info --json` and `mgap ls --json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.engine.reports.base import Report


@dataclass(kw_only=True)
class StoreInfo(Report):
    """`mgap info --json`: what a store holds (docs/design.md's documented keys first)."""

    COMMAND = "info"

    path: str
    status: str
    model: str | None
    dataset: str | None
    split: str | None
    n_images: int
    n_texts: int
    dim: int | None
    skipped: int
    attrs: dict[str, Any] | None = None


@dataclass(kw_only=True)
class StoreListing(Report):
    """One row of `mgap ls --json`."""

    path: str
    name: str
    status: str
    model: str
    dataset: str
    split: str
    n_images: int
    n_texts: int
    dim: int | None
    skipped: int
    running: bool


@dataclass(kw_only=True)
class StoreList(Report):
    """`mgap ls --json`: every store of a directory."""

    COMMAND = "ls"

    store_dir: str
    stores: list[StoreListing]
