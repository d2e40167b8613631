"""`mgap gap` documents kept in the store's sidecar cache, keyed by store content and options.

A repeated `mgap gap` with the same options answers from the cache without reading the
embeddings, and the TUI reads the report an `mgap gap` job left there. While building a
`--by-category` report the command also keeps the summary it computes first (the same
options without `--by-category`), so the O(n·d) numbers are readable before the quadratic
category table is done. The document is stored as UTF-8 JSON bytes (like attention).
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import h5py
import numpy as np

from mgap.engine.studies.gap_request import GapRequest
from mgap.store import Store, schema
from mgap.store.cache import cache_key, load_cached, save_cached

KIND = "gap-report"


def content_digest(store: Store) -> str:
    """A digest of the store's rows without reading them: its per-block CRC32s
    (`/checksums`, written with each block), or its size and mtime for stores without."""
    digest = hashlib.sha1()
    with h5py.File(store.path, "r", locking=False) as f:
        sums = f.get(schema.CHECKSUMS)
        names = sorted(sums) if isinstance(sums, h5py.Group) else []
        for name in names:
            digest.update(name.encode() + np.asarray(sums[name][...]).tobytes())
    if not names:
        stat = store.path.stat()
        digest.update(f"{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def gap_params(store: Store, request: GapRequest, compute: dict) -> dict:
    """The cache key's params of `request` on this store, computed on `compute`."""
    return request.cache_params(compute, content_digest(store))


def load_gap(store: Store, params: dict) -> dict | None:
    """The cached document for `params` (marked `"cached": true`), or None."""
    found = load_cached(store, cache_key(KIND, params))
    if found is None or "json" not in found:
        return None
    return {**json.loads(found["json"].tobytes().decode("utf-8")), "cached": True}


def save_gap(store: Store, params: dict, doc: dict) -> None:
    """Keep `doc` (numpy values as lists; NaN kept, the CLI prints it as null); a sidecar
    that cannot be written (a read-only folder) only costs the next run its time."""
    text = json.dumps(doc, default=lambda value: value.tolist())
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with contextlib.suppress(OSError):
        save_cached(store, cache_key(KIND, params), {"json": data}, params)
