"""The store documents: `mgap info --json` and `mgap ls --json`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.engine.reports.base import Report
from mgap.store import listing

if TYPE_CHECKING:
    from mgap.store.reader import Store


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
    n_images_total: int | None = None
    n_texts_total: int | None = None
    image_side: bool | None = None
    text_side: bool | None = None
    n_categories: int | None = None
    geometry: str | None = None
    curvature: float | None = None
    perturbations: list[str] | None = None
    attrs: dict[str, Any] | None = None
    #: per side, the per-layer states stored (`mgap extract --layers`); absent without
    layers: dict[str, Any] | None = None

    @classmethod
    def of(cls, store: Store) -> StoreInfo:
        layers = {
            side: {
                "count": ls.count,
                "layers": list(ls.layers),
                "spaces": list(ls.spaces),
                "widths": dict(ls.widths),
                "pooling": ls.pooling,
                "lens": ls.lens,
            }
            for side, ls in store.layer_sets.items()
        }
        return cls(
            path=str(store.path),
            status=store.status,
            model=store.model,
            dataset=store.dataset,
            split=store.split,
            n_images=store.n_images,
            n_texts=store.n_texts,
            dim=store.dim,
            skipped=len(store.skipped),
            n_images_total=store.n_images_total,
            n_texts_total=store.n_texts_total,
            image_side=store.has_images,
            text_side=store.has_texts,
            n_categories=len(store.category_names),
            geometry=store.geometry,
            curvature=store.curvature,
            perturbations=store.perturbations,
            attrs=store.attrs,
            layers=layers or None,
            _absent=frozenset() if layers else frozenset({"layers"}),
        )


@dataclass(kw_only=True)
class StoreListing(Report, listing.StoreListing):
    """One row of `mgap ls --json`."""

    # the store layer's listing row (store/listing.py, which cannot import reports), typed

    @classmethod
    def of(cls, row: listing.StoreListing) -> StoreListing:
        return cls(**asdict(row))


@dataclass(kw_only=True)
class StoreList(Report):
    """`mgap ls --json`: every store of a directory."""

    COMMAND = "ls"

    store_dir: str
    stores: list[StoreListing]


def store_list(store_dir: str | os.PathLike) -> StoreList:
    """The `mgap ls` report of `store_dir` (`store/listing.py` reads each store)."""
    rows = listing.list_stores(store_dir)
    return StoreList(store_dir=str(Path(store_dir)), stores=[StoreListing.of(r) for r in rows])
