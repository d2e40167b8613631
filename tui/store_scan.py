"""The Stores pane's view of the store directory, cheap enough to poll while jobs write.

`mgap.store.listing.describe` opens a store and reads its ids and captions: for a store
of a few hundred thousand rows that is a noticeable share of a core, and a store being
written changes on every block. So a store is described again only when its file
changed, and a changing store at most every `CHANGING_EVERY_S` seconds unless a refresh
is forced (a job just finished).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from mgap.store.listing import StoreListing, describe

#: least seconds between two descriptions of a store whose file keeps changing
CHANGING_EVERY_S = 10.0


def store_files(store_dir: Path) -> list[Path]:
    """The `*.h5` stores of a directory (not the sidecar caches), sorted by name."""
    if not store_dir.is_dir():
        return []
    return sorted(p for p in store_dir.glob("*.h5") if not p.name.endswith(".cache.h5"))


def most_recent_complete(entries: Sequence[StoreListing]) -> int:
    """Index of the complete store written last (the one a user opens first), else 0."""
    best, best_mtime = 0, -1.0
    for i, entry in enumerate(entries):
        if entry.status != "complete":
            continue
        try:
            mtime = Path(entry.path).stat().st_mtime
        except OSError:
            continue
        if mtime > best_mtime:
            best, best_mtime = i, mtime
    return best


class StoreScanner:
    def __init__(self, store_dir: Path) -> None:
        self.store_dir = Path(store_dir)
        self._seen: dict[Path, tuple[tuple[int, int], float, StoreListing]] = {}

    def scan(self, force: bool = False) -> list[StoreListing]:
        """Every `*.h5` store (not the sidecar caches), sorted by name, as `list_stores`."""
        paths = store_files(self.store_dir)
        now = time.monotonic()
        entries = []
        for path in paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed since the glob
            signature = (stat.st_mtime_ns, stat.st_size)
            seen = self._seen.get(path)
            fresh = seen is not None and (
                seen[0] == signature or (not force and now - seen[1] < CHANGING_EVERY_S)
            )
            if not fresh:
                seen = (signature, now, describe(path))
                self._seen[path] = seen
            entries.append(seen[2])
        self._seen = {p: v for p, v in self._seen.items() if p in set(paths)}
        return entries
