"""Store file names and the default store directory (docs/design.md §5)."""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_STORE_DIR = "mgap-stores"


def slug(text: str) -> str:
    """`open_clip:ViT-B-32@openai` -> `open_clip-ViT-B-32-openai`; safe in file names."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip())
    return re.sub(r"-{2,}", "-", text).strip("-.") or "unnamed"


def store_filename(dataset: str, split: str, model: str) -> str:
    return f"{slug(dataset)}-{slug(split)}__{slug(model)}.h5"


def default_store_dir() -> Path:
    return Path(os.environ.get("MGAP_STORE_DIR") or DEFAULT_STORE_DIR)


def progress_path(store_path: str | os.PathLike) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".progress.json")


def cache_path(store_path: str | os.PathLike) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".cache.h5")
