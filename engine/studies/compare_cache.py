"""The cached path of `mgap compare`: rows answered without opening the stores.

Opening a store reads and checks all of its metadata (every id and caption), and before
that a child process probes it (`store/probe.py`): most of a cached comparison of many
stores. So each store's sidecar cache also keeps one small entry, stamped with a
SHA-256 of the store file's bytes, never a time: every byte except the embedding
payloads, which it covers through their per-block CRC32s (as every cache stamp does,
`store/cache.py`). It holds, per compute device, the store's dataset and counted image
ids (enough to decide the scope, `compare_scope.py`), where the payloads lie, and the
finished row per scope. A comparison whose every store has its row answers from them
without opening any store with HDF5; any other falls back to opening the stores, and
keeps the entries when no store changed while it was measured. A store
changed in any id, caption, attribute or embedding block has another digest, so no entry
answers for it (docs/guarantees.md "Caches"); MGAP_CHECK=1 never takes this path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from mgap.engine.reports.compare import CompareRow
from mgap.engine.studies.compare_scope import Scope, plan_scope
from mgap.store import schema
from mgap.store.cache import cache_key, load_stamped, save_stamped
from mgap.store.naming import cache_path
from mgap.store.probe import probe_many

KIND = "compare-rows"


def payload_regions(path: Path) -> np.ndarray:
    """(offset, size) of each contiguous dataset of the store that has per-block CRC32s in
    /checksums (the embeddings): bytes the digest reads through those CRC32s instead.
    Called on a store this process has already opened (so probed)."""
    regions = []
    with h5py.File(path, "r", locking=False) as f:

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset) and schema.checksum_name(name) in f:
                offset = obj.id.get_offset()
                if offset is not None:
                    regions.append((int(offset), int(obj.id.get_storage_size())))

        f.visititems(visit)
    return np.asarray(sorted(regions), dtype=np.int64).reshape(-1, 2)


def store_digest(path: Path, regions: np.ndarray) -> str | None:
    """SHA-256 of every byte of the store file outside `regions`, of the regions and of
    the file's size; None when the file cannot be read or the regions do not fit it.
    The bytes outside hold every id, caption, attribute, the HDF5 metadata that places
    the regions, and the CRC32 of every embedding block (docs/guarantees.md "Caches")."""
    digest = hashlib.sha256(np.ascontiguousarray(regions, dtype="<i8").tobytes())
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(str(size).encode())
            at = 0
            for offset, length in [*regions.tolist(), (size, 0)]:
                if offset < at or offset + length > size:
                    return None
                digest.update(f.read(offset - at))
                f.seek(offset + length)
                at = offset + length
    except OSError:
        return None
    return digest.hexdigest()


def _key(compute: dict) -> str:
    """One entry per store and compute device: its ids and its rows by scope."""
    return cache_key(KIND, {"compute": compute})


def _json(found: dict | None) -> dict | None:
    if found is None or "json" not in found:
        return None
    return json.loads(found["json"].tobytes().decode("utf-8"))


def _entry(path: str, key: str) -> tuple[dict, str] | None:
    """The store's {dataset, ids, step, rows} and its digest, when its entry matches the
    file now (the digest covers the bytes outside the entry's recorded regions)."""
    digests: list[str | None] = []

    def stamp(entry) -> str | None:
        regions = entry.get("regions", np.zeros((0, 2), np.int64)).reshape(-1, 2)
        digests.append(store_digest(Path(path), regions))
        return digests[-1]

    entry = _json(load_stamped(Path(path), key, stamp))
    return None if entry is None or not digests else (entry, digests[-1])


def _save(path: str, key: str, digest: str, arrays: dict) -> None:
    with contextlib.suppress(OSError):  # a read-only folder only costs the next run its time
        save_stamped(Path(path), key, arrays, digest, {"digest": digest})


def _data(doc: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(doc).encode("utf-8"), dtype=np.uint8)


def cached_rows(
    paths: list[str], allow_mixed: bool, compute: dict
) -> tuple[Scope, list[CompareRow], list[dict]] | None:
    """(scope, rows, each store's {dataset, ids, step}) when every store's entry matches
    its file and holds a row on the scope; None otherwise (the caller opens the stores)."""
    if os.environ.get("MGAP_CHECK", "") not in ("", "0"):
        return None
    probe_many([c for c in map(cache_path, paths) if c.exists()])
    key = _key(compute)
    found = [_entry(p, key) for p in paths]
    if any(f is None for f in found):
        return None
    heads = [entry for entry, _ in found]
    scope = plan_scope([h["dataset"] for h in heads], [h["ids"] for h in heads], allow_mixed)
    docs = [h["rows"].get(scope.key) for h in heads]
    if any(doc is None for doc in docs):
        return None
    rows = [  # `build`, not `from_json`: the columns are plain values, and it is 100× faster
        CompareRow.build(**{**doc, "store": str(Path(path)), "cached": True})
        for path, doc in zip(paths, docs, strict=True)
    ]
    return scope, rows, heads


def digests_of(paths: list[str]) -> list[tuple[np.ndarray, str | None]]:
    """Each opened store's payload regions and its digest now (`store_digest`)."""
    out = []
    for path in paths:
        regions = payload_regions(Path(path))
        out.append((regions, store_digest(Path(path), regions)))
    return out


def remember(
    paths: list[str],
    before: list[tuple[np.ndarray, str | None]],
    heads: list[dict],
    scope: Scope,
    rows: list[CompareRow],
    compute: dict,
) -> None:
    """Keep each store's row on this scope beside the rows on other scopes, stamped with
    the digest taken before it was measured, if its file still has that digest (a store
    changed meanwhile keeps none)."""
    key = _key(compute)
    for path, (regions, was), head, row in zip(paths, before, heads, rows, strict=True):
        if was is None or store_digest(Path(path), regions) != was:
            continue
        kept = _json(load_stamped(Path(path), key, lambda _, d=was: d)) or {}
        entry = {**head, "rows": {**kept.get("rows", {}), scope.key: row.to_json()}}
        _save(path, key, was, {"json": _data(entry), "regions": regions})
