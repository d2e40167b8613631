"""What the Models and Datasets panes list, loaded off the UI thread and without torch.

The model catalog comes from `mgap models --json` in a subprocess: listing open_clip's
architectures imports open_clip (and with it torch), which must never happen inside
the TUI's process (DESIGN.md §3). Datasets are described by the engine's layout
detection, which reads only annotation files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mgap.errors import MgapError

#: seconds the catalog subprocess may take before the pane shows an error instead
CATALOG_TIMEOUT_S = 60.0

#: splits of the built-in synthetic dataset (engine/datasets/synthetic.py)
SYNTHETIC_SPLITS = ["test", "train"]


@dataclass(frozen=True)
class ModelRow:
    spec: str
    family: str
    description: str
    available_offline: bool | None  # None: unknown (typed in by the user)
    where: str = ""


@dataclass
class DatasetRow:
    name: str
    kind: str
    root: Path | None
    splits: list[str]
    n_images: int | None = None
    n_captions: int | None = None
    error: str = ""
    split_index: int = 0
    limit: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def split(self) -> str:
        return self.splits[self.split_index] if self.splits else ""


def _entry_to_row(entry: dict[str, object]) -> ModelRow:
    offline = entry.get("available_offline")
    return ModelRow(
        spec=str(entry.get("spec", "")),
        family=str(entry.get("family", "")),
        description=str(entry.get("description", "")),
        available_offline=bool(offline) if offline is not None else None,
        where=str(entry.get("where") or ""),
    )


def parse_catalog(document: object) -> list[ModelRow]:
    """Rows from `mgap models --json`: a list of entries or {"models": [...]}."""
    entries = document.get("models", []) if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise MgapError("`mgap models --json` printed no list of models")
    return [_entry_to_row(e) for e in entries if isinstance(e, dict) and e.get("spec")]


def load_catalog(timeout: float = CATALOG_TIMEOUT_S) -> list[ModelRow]:
    """The model catalog, computed in a child process so this one never imports torch."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mgap", "models", "--json"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except subprocess.TimeoutExpired as exc:
        raise MgapError(f"`mgap models --json` took longer than {timeout:.0f} s") from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MgapError(f"`mgap models --json` failed: {reason}")
    try:
        return parse_catalog(json.loads(done.stdout))
    except json.JSONDecodeError as exc:
        raise MgapError(f"`mgap models --json` printed invalid JSON: {exc}") from exc


def custom_model(spec: str) -> ModelRow:
    """A spec typed into the filter box (a local folder, an uncatalogued checkpoint)."""
    from mgap.engine.specs import parse_model_spec

    parsed = parse_model_spec(spec)
    return ModelRow(parsed.text, parsed.family, "typed in", None, "")


def dataset_roots(
    configured: dict[str, Path], extra: list[Path] | None = None
) -> list[tuple[str, Path]]:
    """Named roots from the config file / MGAP_DATA_ROOTS, then `--data-root` paths."""
    roots = [(name, Path(path)) for name, path in configured.items()]
    known = {path.resolve() for _, path in roots}
    for path in extra or []:
        if Path(path).resolve() not in known:
            roots.append((Path(path).name or str(path), Path(path)))
    return roots


def synthetic_row() -> DatasetRow:
    return DatasetRow(
        "synthetic", "synthetic", None, list(SYNTHETIC_SPLITS), 500, 2500, "", 0, None
    )


def describe_dataset(name: str, root: Path) -> DatasetRow:
    """Detect a root's layout; a root that cannot be read becomes a row with the reason."""
    from mgap.engine.datasets.detect import detect_dataset

    try:
        found = detect_dataset(root)
    except MgapError as exc:
        return DatasetRow(name, "?", root, [], error=exc.one_line())
    except OSError as exc:
        return DatasetRow(name, "?", root, [], error=f"{root}: {exc.strerror or exc}")
    return DatasetRow(
        name,
        str(found.kind),
        Path(found.root),
        list(found.splits) or [""],
        found.n_images,
        found.n_captions,
    )
