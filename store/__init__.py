"""HDF5 embedding stores: schema, writer, reader, catalog, progress files, cache.

Imports numpy and h5py only (never torch or textual): tests/test_import_hygiene.py checks it.
"""

from mgap.store.reader import Store, open_store
from mgap.store.writer import StoreLayout, StoreWriter, create_store

__all__ = ["Store", "StoreLayout", "StoreWriter", "create_store", "open_store"]
