"""List the stores of a directory with what `mgap ls` and the TUI's Stores pane show."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from mgap.core.errors import StoreError
from mgap.store.probe import not_a_store, probe_many
from mgap.store.progress import is_running, read_progress
from mgap.store.reader import Store


@dataclass
class StoreListing:
    """One store of a directory as `mgap ls` and the Stores pane list it (the ls report's
    row, `engine/reports/stores.py`, is this type)."""

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
    size_mb: float
    error: str = ""
    #: WebDataset sources: how many tar shards and samples the store was built from
    shards: int = 0
    samples: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


#: the status of an HDF5 file without a store's datasets (docs/commands.md, `mgap ls`)
NOT_A_STORE = "not-a-store"


def _unread(path: Path, status: str, running: bool, size_mb: float, error: str) -> StoreListing:
    return StoreListing(
        str(path), path.name, status, "", "", "", 0, 0, None, 0, running, size_mb, error
    )


def describe(path: str | os.PathLike) -> StoreListing:
    path = Path(path)
    size_mb = path.stat().st_size / 1e6 if path.exists() else 0.0
    probe_many([path])  # memoised: a file `list_stores` has probed is not probed again
    if not_a_store(path):
        return _unread(path, NOT_A_STORE, False, size_mb, f"{path} is not an mgap store")
    running = is_running(read_progress(path))
    try:
        store = Store(path)
    except StoreError as exc:
        return _unread(path, "broken", running, size_mb, exc.one_line())
    status = "running" if running else store.status
    return StoreListing(
        str(path),
        path.name,
        status,
        store.model,
        store.dataset,
        store.split,
        store.n_images,
        store.n_texts,
        store.dim,
        len(store.skipped),
        running,
        size_mb,
        shards=int(store.attrs.get("shards", 0) or 0),
        samples=int(store.attrs.get("samples", 0) or 0),
    )


def list_stores(store_dir: str | os.PathLike) -> list[StoreListing]:
    """Every `*.h5` store in `store_dir` (not the sidecar caches), sorted by name."""
    root = Path(store_dir)
    if not root.is_dir():
        return []
    paths = [p for p in sorted(root.glob("*.h5")) if not p.name.endswith(".cache.h5")]
    probe_many(paths)  # one child walks them all; `describe` then finds each verdict memoised
    return [describe(p) for p in paths]
