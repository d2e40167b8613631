"""The examples' gallery scans, kept in the store's sidecar cache (docs/design.md §7, §10).

Counting a category's images against every caption of a COCO-train-sized store takes
seconds, and an exact rank cache of every query takes many minutes on a CPU. So the scan of
the queries an examples report counted (their retrieval counts, top-k and the gallery's
centroid) is kept under a digest of those query rows, the side, the score and the tie
tolerance, stamped like every cache entry: a second drill-down into the same category, or
a repeated `mgap examples`, reads it back, and an entry made from other rows is ignored.
An entry holding a larger k serves a smaller one, and any order of the same queries.
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
    """The cache key's params: which queries (a digest of their rows as a set: a report
    that lists them in another order reads the same entry), which side, how scored."""
    digest = hashlib.sha1(np.sort(np.asarray(rows, dtype="<i8")).tobytes()).hexdigest()
    return {"side": side, "queries": digest, "n": int(rows.size), **score, "tol": float(tol)}


def load_scan(store: Store, params: dict, rows: np.ndarray, k: int) -> GalleryScan | None:
    """The cached scan of query `rows` (in that order) with its top `k`; None when absent,
    stale, holding fewer, or made for other rows."""
    got = load_cached(store, cache_key(KIND, params))
    if got is None or any(f not in got for f in ("rows", *_FIELDS)):
        return None
    at = np.searchsorted(got["rows"], rows)
    if got["top_rows"].shape[1] < k or at.size != got["rows"].size:
        return None
    if at.size and (at.max() >= got["rows"].size or (got["rows"][at] != rows).any()):
        return None
    top_rows, top_scores = got["top_rows"][at, :k], got["top_scores"][at, :k]
    counts = (got[f][at] for f in ("above", "tied", "right_tied"))
    return GalleryScan(*counts, top_rows, top_scores, got["centroid"])


def save_scan(store: Store, params: dict, rows: np.ndarray, scan: GalleryScan) -> None:
    """Keep `scan` of query `rows`, sorted by row; a cache that cannot be written (a
    read-only folder) costs only time."""
    order = np.argsort(rows, kind="stable")
    arrays = {f: np.asarray(getattr(scan, f))[order] for f in _FIELDS[:-1]}
    arrays.update(rows=np.asarray(rows)[order], centroid=np.asarray(scan.centroid))
    with contextlib.suppress(OSError):
        save_cached(store, cache_key(KIND, params), arrays, params)
