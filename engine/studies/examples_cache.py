"""The examples' gallery scans, kept in the store's sidecar cache (docs/design.md §7, §10).

Counting a category's images against every caption of a COCO-train-sized store takes
seconds, and an exact rank cache of every query takes many minutes on a CPU. So the scan of
the queries an examples report counted (their retrieval counts, top-k and the gallery's
centroid) is kept under a digest of those query rows, the side, the score and the tie
tolerance, stamped like every cache entry: a second drill-down into the same category, or
a repeated `mgap examples`, reads it back, and an entry made from other rows is ignored.
An entry holding a larger k serves a smaller one.
"""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np

from mgap.engine.measures.examples import GalleryScan
from mgap.store import Store
from mgap.store.cache import cache_key, load_cached, save_cached

KIND = "examples-scan"
_FIELDS = ("above", "tied", "right_tied", "top_rows", "top_scores", "centroid")


def scan_params(side: str, rows: np.ndarray, score: dict, tol: float) -> dict:
    """The cache key's params: which queries (a digest of their rows, in order), which side,
    and how they were scored."""
    digest = hashlib.sha1(np.ascontiguousarray(rows, dtype="<i8").tobytes()).hexdigest()
    return {"side": side, "queries": digest, "n": int(rows.size), **score, "tol": float(tol)}


def load_scan(store: Store, params: dict, k: int) -> GalleryScan | None:
    """The cached scan with its top `k` (None when absent, stale, or holding fewer)."""
    got = load_cached(store, cache_key(KIND, params))
    if got is None or any(f not in got for f in _FIELDS) or got["top_rows"].shape[1] < k:
        return None
    top_rows, top_scores = got["top_rows"][:, :k], got["top_scores"][:, :k]
    return GalleryScan(
        got["above"], got["tied"], got["right_tied"], top_rows, top_scores, got["centroid"]
    )


def save_scan(store: Store, params: dict, scan: GalleryScan) -> None:
    """Keep `scan`; a cache that cannot be written (a read-only folder) costs only time."""
    arrays = {f: np.asarray(getattr(scan, f)) for f in _FIELDS}
    with contextlib.suppress(OSError):
        save_cached(store, cache_key(KIND, params), arrays, params)
