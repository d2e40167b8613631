"""Dataset loaders: `load_manifest(kind, ...)` dispatches to one module per format."""

from __future__ import annotations

import importlib
from pathlib import Path

from mgap.core.errors import UsageError
from mgap.engine.datasets.base import ImageRecord, Manifest

#: dataset kind -> module in this package exposing `load(data_root, split, **options)`
DATASET_MODULES = {
    "coco": "coco",
    "flickr30k": "flickr30k",
    "nocaps": "nocaps",
    "csv": "tabular",
    "jsonl": "tabular",
    "imagefolder": "imagefolder",
    "synthetic": "synthetic",
    "webdataset": "webdataset",
}


def load_manifest(
    kind: str,
    data_root: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    **options: object,
) -> Manifest:
    if kind not in DATASET_MODULES:
        known = ", ".join(DATASET_MODULES)
        raise UsageError(f"unknown dataset kind {kind!r}", hint=f"use one of: {known}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    module = importlib.import_module(f"mgap.engine.datasets.{DATASET_MODULES[kind]}")
    root = Path(data_root).expanduser() if data_root is not None else None
    manifest = module.load(root, split, kind=kind, **options)
    return manifest.limit(limit)


__all__ = ["DATASET_MODULES", "ImageRecord", "Manifest", "load_manifest"]
