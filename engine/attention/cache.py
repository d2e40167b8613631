"""`mgap attention` results kept in the store's sidecar cache, keyed by their parameters.

Model-free (numpy, h5py through `mgap.store`), so the TUI reads a result the command left
without importing any model code, and launches `mgap attention --json` only when absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mgap.engine.reports.studies import AttentionReport
from mgap.store import open_store
from mgap.store.cache import cache_key, load_cached, save_cached

KIND = "attention"


def params(images: int, layer: int, seed: int) -> dict[str, int]:
    return {"images": images, "layer": layer, "seed": seed}


def load_attention(path: Path, images: int, layer: int, seed: int) -> AttentionReport | None:
    """The cached report for these parameters, or None (absent, or from other rows)."""
    store = open_store(path)
    found = load_cached(store, cache_key(KIND, params(images, layer, seed)))
    if found is None or "json" not in found:
        return None
    return AttentionReport.from_json(json.loads(found["json"].tobytes().decode("utf-8")))


def save_attention(path: Path, images: int, layer: int, seed: int, report: AttentionReport) -> bool:
    """Keep `report`; False when the sidecar cannot be written (a read-only folder)."""
    store = open_store(path)
    data = np.frombuffer(json.dumps(report.to_json()).encode("utf-8"), dtype=np.uint8)
    key = cache_key(KIND, params(images, layer, seed))
    try:
        save_cached(store, key, {"json": data}, params(images, layer, seed))
    except OSError:
        return False
    return True
