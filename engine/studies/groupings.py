"""Subgroups of a store's images for fairness reports (`--groups`).

A grouping assigns each image at most one group label ("" = not in any group of it):
- `category` and `supercategory`: the built-in COCO groupings (the primary category of
  each image and its supercategory);
- the name of an image attribute stored at extraction (`/images/attributes/<key>`);
- a CSV file keyed by image id or file name, where every other column is a grouping
  (a demographic attribute, a photographer, a site...).

A CSV's key column is the first one named id, image_id, image, file_name, filename, file
or path, else its first column; a key matches an image's id, its stored path or the
path's file name. Images without a row, and rows without an image, are counted and
reported in one line, never an error.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from mgap.core.errors import UsageError
from mgap.store import Store

BUILTIN = ("category", "supercategory")
KEY_COLUMNS = ("image_id", "id", "image", "file_name", "filename", "file", "path")


@dataclass
class Grouping:
    """One grouping: a label per image of the store ("" = the image is in none of its groups)."""

    name: str
    labels: np.ndarray  # object array of str, one per image (store.image_ids order)
    source: str  # "builtin", "attribute" or the CSV path

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """(group, image mask) for every non-empty group, in sorted order."""
        return [(str(g), self.labels == g) for g in sorted({str(v) for v in self.labels if v})]


@dataclass
class MissingRows:
    """How a CSV matched the store: images it does not cover and rows naming no image."""

    file: str
    key_column: str
    images_without_row: int
    rows_without_image: int
    n_images: int
    #: rows naming an image an earlier row already named (the last such row counts)
    duplicate_rows: int = 0

    def line(self) -> str:
        text = (
            f"groups {self.file}: {self.images_without_row} of {self.n_images} images have no row "
            f"(key column {self.key_column!r}) and are left out of its groupings; "
            f"{self.rows_without_image} rows match no image of the store"
        )
        if self.duplicate_rows:
            text += (
                f"; {self.duplicate_rows} rows repeat an image of an earlier row (the last counts)"
            )
        return text

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "key_column": self.key_column,
            "images_without_row": self.images_without_row,
            "rows_without_image": self.rows_without_image,
        }


def _builtin(store: Store, name: str) -> Grouping:
    if not store.category_names:
        raise UsageError(
            f"--groups {name}: {store.path.name} has no category labels",
            hint="extract COCO with its instances file, or pass --groups FILE.csv",
        )
    primary = store.primary_category
    if name == "category":
        names = np.asarray([*store.category_names, ""], dtype=object)
    else:
        names = np.asarray([*store.supercategory_of, ""], dtype=object)
    return Grouping(name, names[primary].astype(object), "builtin")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--groups {path}: cannot read it as CSV ({exc})") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise UsageError(
            f"--groups {path} needs a header, at least one row, a key column and a grouping column",
            hint="e.g. image_id,gender,age_band",
        )
    return [h.strip() for h in rows[0]], rows[1:]


def _csv_groupings(store: Store, path: Path) -> tuple[list[Grouping], MissingRows]:
    header, rows = _read_csv(path)
    lowered = [h.lower() for h in header]
    key = next((lowered.index(k) for k in KEY_COLUMNS if k in lowered), 0)
    position: dict[str, int] = {}
    for i, (image_id, image_path) in enumerate(
        zip(store.image_ids, store.image_paths, strict=True)
    ):
        for alias in (str(image_id), str(image_path), PurePosixPath(str(image_path)).name):
            if alias:
                position.setdefault(alias, i)
    columns = [c for c in range(len(header)) if c != key]
    labels = {c: np.full(store.n_images, "", dtype=object) for c in columns}
    covered = np.zeros(store.n_images, dtype=bool)
    unmatched = duplicates = 0
    for row in rows:
        cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
        i = position.get(cells[key])
        if i is None:
            unmatched += 1
            continue
        duplicates += int(covered[i])
        covered[i] = True
        for c in columns:
            labels[c][i] = cells[c]
    groupings = [Grouping(header[c] or f"column{c}", labels[c], str(path)) for c in columns]
    missing = MissingRows(
        str(path), header[key], int((~covered).sum()), unmatched, int(store.n_images), duplicates
    )
    return groupings, missing


def load_groupings(store: Store, specs: Sequence[str]) -> tuple[list[Grouping], list[MissingRows]]:
    """Groupings for `--groups` values: built-in names, stored attributes or CSV files."""
    groupings: list[Grouping] = []
    missing: list[MissingRows] = []
    attributes = store.attributes
    for spec in specs:
        if spec in BUILTIN:
            groupings.append(_builtin(store, spec))
        elif spec in attributes:
            groupings.append(Grouping(spec, attributes[spec].astype(object), "attribute"))
        elif Path(spec).is_file():
            found, report = _csv_groupings(store, Path(spec))
            groupings.extend(found)
            missing.append(report)
        else:
            known = [*BUILTIN, *sorted(attributes)]
            raise UsageError(
                f"--groups {spec!r} is neither a CSV file nor a grouping of the store",
                hint=f"give a CSV keyed by image id or file name, or one of: {', '.join(known)}",
            )
    names = [g.name for g in groupings]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise UsageError(f"--groups gives the grouping {duplicate!r} twice")
    return groupings, missing
