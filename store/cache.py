"""Derived results (projections, kNN graphs) cached beside a store, keyed by parameters.

The cache is a sidecar HDF5 file (`<store>.cache.h5`), so writing it never touches the
store itself. Each entry records the store's `finished` stamp and row counts; an entry
made from other rows is ignored. A cache that cannot be read is removed and rebuilt. A
store opened with `check` (`--check`, MGAP_CHECK=1) ignores the cache: its rows are read.

Several processes use one cache at once (the TUI reads while its analysis jobs write), so
every access holds an advisory lock on `<cache>.lock`: shared to read, exclusive to write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np

from mgap.store.naming import cache_path
from mgap.store.probe import probe, trust
from mgap.store.reader import Store


def cache_key(kind: str, params: Mapping[str, object]) -> str:
    """A stable key: `kind` plus a hash of the JSON of `params` (sorted keys)."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


def _stamp(store: Store) -> str:
    return f"{store.attrs.get('finished', '')}|{store.n_images}|{store.n_texts}"


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold `<path>.lock` shared or exclusive (flock: released if the process dies). A
    reader in a folder it cannot write to goes unlocked: no mgap process writes there."""
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if exclusive:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def load_cached(store: Store, key: str) -> dict[str, np.ndarray] | None:
    path = cache_path(store.path)
    if store.check or not path.exists():
        return None  # a checked run (--check) reads and checks the rows it reports on
    with _locked(path, exclusive=False):
        return _read(store, path, key)


def _read(store: Store, path: Path, key: str) -> dict[str, np.ndarray] | None:
    if probe(path):  # bytes that make HDF5 hang or crash: drop the cache like any damage
        path.unlink(missing_ok=True)
        return None
    try:
        with h5py.File(path, "r", locking=False) as f:
            if key not in f or f[key].attrs.get("stamp") != _stamp(store):
                return None
            return {name: ds[...] for name, ds in f[key].items()}
    except OSError:
        path.unlink(missing_ok=True)
        return None


def save_cached(
    store: Store,
    key: str,
    arrays: Mapping[str, np.ndarray],
    params: Mapping[str, object] | None = None,
) -> None:
    path = cache_path(store.path)
    with _locked(path, exclusive=True):
        _write(store, path, key, arrays, params)


def _write(
    store: Store,
    path: Path,
    key: str,
    arrays: Mapping[str, np.ndarray],
    params: Mapping[str, object] | None,
) -> None:
    try:
        f = h5py.File(path, "a")
    except OSError:
        path.unlink(missing_ok=True)
        f = h5py.File(path, "a")
    with f:
        if key in f:
            del f[key]
        group = f.create_group(key)
        for name, value in arrays.items():
            group.create_dataset(name, data=np.asarray(value))
        group.attrs["stamp"] = _stamp(store)
        group.attrs["params"] = json.dumps(dict(params or {}), sort_keys=True, default=str)
    trust(path)
