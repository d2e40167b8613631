"""The progress file: the protocol between a running `mgap extract` and the TUI.

A small JSON document next to the store, replaced atomically (write a temporary file of
an unpredictable name, then `os.replace`: no link is followed), so a reader never sees half a file. Keys: pid, status (starting,
running, complete, failed, cancelled), phase (texts, images, done), images_done,
n_images, texts_done, n_texts, images_per_s, eta_s, device, model, dataset, split,
store, started, updated, error, command.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mgap.core.errors import StoreError
from mgap.store.naming import atomic_write, open_sidecar, progress_path

RUNNING_STATES = ("starting", "running")


def write_progress(store_path: str | os.PathLike, **fields: object) -> dict[str, object]:
    """Merge `fields` into the store's progress file and replace it atomically."""
    path = progress_path(store_path)
    doc = read_progress(store_path) or {}
    doc.update(fields)
    doc["updated"] = time.time()
    atomic_write(path, json.dumps(doc).encode("utf-8"))
    return doc


def read_progress(store_path: str | os.PathLike) -> dict[str, object] | None:
    """The progress document, or None: missing, unreadable, or a link (never followed)."""
    try:
        with os.fdopen(open_sidecar(progress_path(store_path), os.O_RDONLY), "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError, StoreError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_running(doc: dict[str, object] | None) -> bool:
    """True when the progress file says running and its process still exists."""
    if not doc or doc.get("status") not in RUNNING_STATES:
        return False
    pid = doc.get("pid")
    return isinstance(pid, int) and pid_alive(pid)


def find_progress_files(store_dir: str | os.PathLike) -> list[Path]:
    return sorted(Path(store_dir).glob("*.h5.progress.json"))
