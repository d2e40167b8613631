"""Derived results (projections, kNN graphs) cached beside a store, keyed by parameters.

The cache is a sidecar HDF5 file (`<store>.cache.h5`), so writing it never touches the
store itself. Each entry records a digest of the store's content (`content_stamp`: every
row's id, path, captions, pairs, categories and attributes, the validity flags, progress
and skips, and the CRC32 of every embedding block), never a time: an entry made from other
rows or other embeddings (a store renamed over another) is ignored. The cache and its lock
are never opened through a link (`store.naming.open_sidecar`). A cache that cannot be read is removed and rebuilt. A
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
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np

from mgap.store import schema as S
from mgap.store.naming import cache_path, fresh_sidecar, link_error, open_sidecar, refuse_link
from mgap.store.probe import probe, trust
from mgap.store.reader import Store


def cache_key(kind: str, params: Mapping[str, object]) -> str:
    """A stable key: `kind` plus a hash of the JSON of `params` (sorted keys)."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


_STAMPS: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()


def _hash_strings(h: hashlib._Hash, values: object) -> None:
    h.update(json.dumps([str(v) for v in values]).encode())


def content_stamp(store: Store) -> str:
    """SHA-256 of everything a cached result may depend on in `store` (memoised per Store)."""
    if store in _STAMPS:
        return _STAMPS[store]
    h = hashlib.sha256()
    for values in (store.all_image_ids, store._paths_all, store.all_captions):
        _hash_strings(h, values)
    _hash_strings(h, store.category_names)
    _hash_strings(h, sorted(store.skipped.items()))
    for key, values in sorted(store._attributes_all.items()):
        _hash_strings(h, [key, *values])
    for array in (store.all_caption_image_rows, store._primary_all):
        h.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    for array in (store._labels_all, store._valid_all):
        h.update(np.ascontiguousarray(array, dtype="u1").tobytes())
    h.update(f"{store.images_done}|{store.texts_done}|{store.perturbations}".encode())
    _hash_embeddings(h, store.path)
    _STAMPS[store] = h.hexdigest()
    return _STAMPS[store]


def _hash_embeddings(h: hashlib._Hash, path: Path) -> None:
    """The CRC32 of every embedding block (`/checksums`); the rows themselves in a
    schema-1 store, which has no checksums."""
    with h5py.File(path, "r", locking=False) as f:
        sums = f.get(S.CHECKSUMS)
        if isinstance(sums, h5py.Group) and len(sums):
            for name in sorted(sums):
                h.update(name.encode() + np.ascontiguousarray(sums[name][...]).tobytes())
            return
        for name in (S.IMAGE_EMB, S.TEXT_EMB):
            if name in f:
                h.update(name.encode() + np.ascontiguousarray(f[name][...]).tobytes())


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold `<path>.lock` shared or exclusive (flock: released if the process dies). A
    reader in a folder it cannot write to goes unlocked: no mgap process writes there."""
    try:
        fd = open_sidecar(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
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
    refuse_link(cache_path(store.path))
    if store.check:
        return None  # a checked run (--check) reads and checks the rows it reports on
    return load_stamped(store.path, key, lambda _: content_stamp(store))


def load_stamped(
    store_path: Path, key: str, stamp: Callable[[Mapping[str, np.ndarray]], str]
) -> dict[str, np.ndarray] | None:
    """The entry `key` of the sidecar cache of `store_path` if its stamp is `stamp(entry)`
    (a digest of the store's content, computed only when the entry exists: from the
    entry's arrays, where they say which bytes of the store the digest covers)."""
    path = cache_path(store_path)
    refuse_link(path)
    if not path.exists():
        return None
    with _locked(path, exclusive=False):
        return _read(path, key, stamp)


def _read(
    path: Path, key: str, stamp: Callable[[Mapping[str, np.ndarray]], str]
) -> dict[str, np.ndarray] | None:
    if probe(path):  # bytes that make HDF5 hang or crash: drop the cache like any damage
        path.unlink(missing_ok=True)
        return None
    try:
        with h5py.File(path, "r", locking=False) as f:
            if key not in f:
                return None
            arrays = {name: ds[...] for name, ds in f[key].items()}
            return arrays if f[key].attrs.get("stamp") == stamp(arrays) else None
    except OSError:
        path.unlink(missing_ok=True)
        return None


def save_cached(
    store: Store,
    key: str,
    arrays: Mapping[str, np.ndarray],
    params: Mapping[str, object] | None = None,
) -> None:
    save_stamped(store.path, key, arrays, content_stamp(store), params)


def save_stamped(
    store_path: Path,
    key: str,
    arrays: Mapping[str, np.ndarray],
    stamp: str,
    params: Mapping[str, object] | None = None,
) -> None:
    """Write the entry `key` stamped with `stamp` (a digest of the store's content)."""
    path = cache_path(store_path)
    with _locked(path, exclusive=True):
        _write(path, key, arrays, stamp, params)


def _write(
    path: Path,
    key: str,
    arrays: Mapping[str, np.ndarray],
    stamp: str,
    params: Mapping[str, object] | None,
) -> None:
    with _open_cache(path) as f:
        if key in f:
            del f[key]
        group = f.create_group(key)
        for name, value in arrays.items():
            group.create_dataset(name, data=np.asarray(value))
        group.attrs["stamp"] = stamp
        group.attrs["params"] = json.dumps(dict(params or {}), sort_keys=True, default=str)
    trust(path)


def _open_cache(path: Path) -> h5py.File:
    """The cache open to write: an existing one appended to, a missing or unreadable one
    made anew; never through a link, and refused if the file changed under the open."""
    refuse_link(path)
    mode = "a"
    if not path.exists():
        os.close(fresh_sidecar(path))
        mode = "w"
    known = os.lstat(path).st_ino
    try:
        f = h5py.File(path, mode)
    except OSError:
        os.close(fresh_sidecar(path))
        known = os.lstat(path).st_ino
        f = h5py.File(path, "w")
    if os.fstat(f.id.get_vfd_handle()).st_ino != known:
        f.close()
        raise link_error(path, "a file replaced while mgap opened it")
    return f
