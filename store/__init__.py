"""HDF5 embedding stores: schema, writer, reader, catalog, progress files, cache.

Imports numpy and h5py only (never torch or textual): tests/test_import_hygiene.py checks it.
The names below load lazily (PEP 562), so `mgap.store.progress` and `mgap.store.naming`
cost no h5py import (the TUI's first frame needs only those).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Store": "mgap.store.reader",
    "open_store": "mgap.store.reader",
    "StoreLayout": "mgap.store.writer",
    "StoreWriter": "mgap.store.writer",
    "create_store": "mgap.store.writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mgap.store' has no attribute {name!r}")
