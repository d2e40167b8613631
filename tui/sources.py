"""What the Models and Datasets panes list, loaded off the UI thread and without torch.

The model catalog comes from `mgap models --json` in a subprocess: listing open_clip's
architectures imports open_clip (and with it torch), which must never happen inside
the TUI's process (docs/design.md §3). Datasets are described by the engine's layout
detection, which reads only annotation files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mgap.core.errors import MgapError
from mgap.engine.reports.pipeline import CatalogModel

#: seconds the catalog subprocess may take before the pane shows an error instead
CATALOG_TIMEOUT_S = 60.0


@dataclass
class DatasetRow:
    name: str
    kind: str
    root: Path | None
    splits: list[str]
    n_images: int | dict[str, int] | None = None  # one count, or one per split
    n_captions: int | dict[str, int] | None = None
    error: str = ""
    split_index: int = 0
    limit: int | None = None

    @property
    def split(self) -> str:
        return self.splits[self.split_index] if self.splits else ""


def _entry_to_row(entry: dict[str, object]) -> CatalogModel:
    """A catalog row from one entry of the child's output, missing keys read as unknown."""
    offline = entry.get("available_offline")
    return CatalogModel(
        spec=str(entry.get("spec", "")),
        family=str(entry.get("family", "")),
        description=str(entry.get("description", "")),
        image=bool(entry.get("image")),
        text=bool(entry.get("text")),
        recommended=bool(entry.get("recommended")),
        available_offline=bool(offline) if offline is not None else None,
        where=str(entry.get("where") or ""),
    )


def parse_catalog(document: object) -> list[CatalogModel]:
    """Rows from `mgap models --json`, usable ones first: offline, then recommended."""
    entries = document.get("models", []) if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise MgapError("`mgap models --json` printed no list of models")
    rows = [_entry_to_row(e) for e in entries if isinstance(e, dict) and e.get("spec")]
    return sorted(rows, key=lambda r: (not r.available_offline, not r.recommended))


def _reason(stderr: str) -> str:
    """The most telling line of a child's stderr (click draws its errors in boxes)."""
    lines = [line.strip(" │╭╮╰╯─") for line in stderr.splitlines()]
    lines = [line for line in lines if any(ch.isalnum() for ch in line) and line != "Error"]
    errors = [line for line in lines if "error:" in line.lower()]
    return (errors or lines or ["no output"])[-1]


class CatalogLoader:
    """Runs `mgap models --json` in a child process, which `stop()` kills on quit.

    The child imports open_clip (and with it torch) to list architectures; that must
    never happen in the TUI's process, and a quitting TUI must not wait for it.
    """

    def __init__(self, timeout: float = CATALOG_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.stopped = False

    def run(self) -> list[CatalogModel]:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mgap", "models", "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            out, err = self.process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise MgapError(f"`mgap models --json` took longer than {self.timeout:.0f} s") from exc
        if self.process.returncode != 0:
            raise MgapError(f"`mgap models --json` failed: {_reason(err)}")
        try:
            return parse_catalog(json.loads(out))
        except json.JSONDecodeError as exc:
            raise MgapError(f"`mgap models --json` printed invalid JSON: {exc}") from exc

    def stop(self) -> None:
        """Kill the child; the thread waiting in `run` then returns."""
        self.stopped = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


def custom_model(spec: str) -> CatalogModel:
    """A spec typed into the filter box (a local folder, an uncatalogued checkpoint)."""
    from mgap.engine.specs import parse_model_spec

    parsed = parse_model_spec(spec)
    return CatalogModel(
        spec=parsed.text,
        family=parsed.family,
        description="typed in",
        image=False,
        text=False,
        recommended=False,
        available_offline=None,
        where="",
    )


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
    """The built-in synthetic dataset, with the engine's default sizes per split."""
    from mgap.engine.datasets.synthetic import CAPTIONS_PER_IMAGE, DEFAULT_N, SPLITS

    splits = sorted(SPLITS, key=SPLITS.get, reverse=True)  # test (the small one) first
    captions = {split: DEFAULT_N[split] * CAPTIONS_PER_IMAGE for split in splits}
    return DatasetRow("synthetic", "synthetic", None, splits, dict(DEFAULT_N), captions)


def describe_dataset(name: str, root: Path) -> list[DatasetRow]:
    """Detect a root's layouts; a root that cannot be read becomes one row with the reason.

    A root may hold several datasets (e.g. COCO captions and a CSV): each gets a row,
    named `name:kind` when there is more than one.
    """
    from mgap.engine.datasets.detect import detect_dataset

    try:
        found = detect_dataset(root)
    except MgapError as exc:
        return [DatasetRow(name, "?", root, [], error=exc.one_line())]
    except OSError as exc:
        return [DatasetRow(name, "?", root, [], error=f"{root}: {exc.strerror or exc}")]
    if not found:
        return [DatasetRow(name, "?", root, [], error=f"no dataset layout recognised in {root}")]
    rows = []
    for item in found:
        label = name if len(found) == 1 else f"{name}:{item.kind}"
        splits = list(item.splits) or [""]
        per_split = {k: v[0] for k, v in item.per_split.items()} or item.n_images
        captions = {k: v[1] for k, v in item.per_split.items()} or item.n_captions
        rows.append(
            DatasetRow(label, item.kind, Path(item.root), splits, per_split, captions, item.problem)
        )
    return rows
