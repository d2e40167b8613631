"""Your own data as a table: `--dataset csv` (.csv, or .tsv) and `--dataset jsonl`.

One row per (image, caption): several rows with the same image give that image several
captions. Column names follow the common tools (`image`/`image_path`/`file_name`/
`filepath`, `caption`/`text`, optional `category`, `id`, `split`); any other column
becomes a per-image attribute. Image paths are relative to the table's folder or
absolute. Images keep the order of their first row, which is the order the user wrote.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mgap.core.errors import DatasetError, UsageError
from mgap.engine.datasets.base import ImageRecord, Manifest
from mgap.engine.datasets.files import (
    describe_hashes,
    reject_options,
    require_records,
    require_regular,
    require_root,
    sha256_file,
)

IMAGE_KEYS = ("image", "image_path", "file_name", "filepath")
CAPTION_KEYS = ("caption", "text")
SUFFIXES = {"csv": (".csv", ".tsv"), "jsonl": (".jsonl",)}
_RESERVED = {*IMAGE_KEYS, *CAPTION_KEYS, "category", "id", "split"}


def table_files(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES[kind])


def find_table(root: Path, kind: str) -> Path:
    """The table itself, or the only table of this kind in the folder."""
    if not root.is_dir():
        return require_regular(root)
    tables = table_files(root, kind)
    if len(tables) != 1:
        found = ", ".join(p.name for p in tables) or "none"
        raise DatasetError(
            f"--dataset {kind} needs exactly one {'/'.join(SUFFIXES[kind])} file in {root} "
            f"(found {found})",
            hint="pass the file itself with --data-root",
        )
    return tables[0]


@dataclass
class _Image:
    id: str
    path: str
    captions: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)


def load(data_root: Path | None, split: str | None, *, kind: str, **options: object) -> Manifest:
    reject_options(kind, options)
    table = require_regular(find_table(require_root(data_root, kind), kind))
    rows = _csv_rows(table) if kind == "csv" else _jsonl_rows(table)
    images: dict[str, _Image] = {}
    ids: dict[str, str] = {}  # image id -> path, to catch one id on two images
    has_split = False
    for lineno, row in rows:
        image_key = _first_key(row, IMAGE_KEYS, table, lineno, "image column")
        caption_key = next((k for k in CAPTION_KEYS if k in row), None)
        if caption_key is None and "category" not in row:
            raise DatasetError(
                f"{table} line {lineno}: no caption column",
                hint=f"name it one of {', '.join(CAPTION_KEYS)} (or give a category column)",
            )
        if "split" in row:
            has_split = True
            if split is not None and _text(row["split"]) != split:
                continue
        path = _text(row[image_key])
        if not path:
            raise DatasetError(f"{table} line {lineno}: empty {image_key!r}")
        image_id = _text(row.get("id")) or path
        if ids.setdefault(image_id, path) != path:
            raise DatasetError(f"{table} line {lineno}: id {image_id!r} names two images")
        image = images.setdefault(path, _Image(image_id, path))
        if image.id != image_id:
            raise DatasetError(f"{table} line {lineno}: image {path!r} has two ids")
        _add_row(image, row, caption_key, f"{table} line {lineno}")
    if split is not None and not has_split:
        raise UsageError(
            f"{table} has no 'split' column, so --split {split} cannot select rows",
            hint="leave out --split",
        )
    records = [
        ImageRecord(
            id=image.id,
            path=image.path,
            captions=image.captions,
            categories=sorted(set(image.categories)),
            primary=image.categories[0] if image.categories else None,
            attributes=image.attributes,
        )
        for image in images.values()
    ]
    require_records(records, table, kind)
    names = sorted({c for r in records for c in r.categories})
    return Manifest(
        dataset=kind,
        split=split if split is not None else table.stem,
        root=str(table.parent),
        records=records,
        category_names=names,
        annotation_sha256=describe_hashes({table.name: sha256_file(table)}),
    )


def _add_row(image: _Image, row: dict[str, object], caption_key: str | None, where: str) -> None:
    """Merge one row: captions accumulate (a JSON list counts as several), the first
    category is the primary one, and an attribute keeps its first non-empty value."""
    if caption_key is not None:
        value = row[caption_key]
        texts = value if isinstance(value, list) else [value]
        image.captions.extend(t for t in (_text(v) for v in texts) if t)
    category = _text(row.get("category"))
    if category and category not in image.categories:
        image.categories.append(category)
    for key, value in row.items():
        if key not in _RESERVED and _text(value) and key not in image.attributes:
            image.attributes[_attribute_name(key, where)] = _text(value)


def _attribute_name(key: object, where: str) -> str:
    """A column that becomes a store attribute: named, and usable as one HDF5 name."""
    if not isinstance(key, str) or not key.strip():
        raise DatasetError(
            f"{where}: a column with values has an empty header",
            hint="name the column in the header row, or remove it",
        )
    if "/" in key or key in (".", "..") or not key.isprintable():
        raise DatasetError(
            f"{where}: column name {key!r} cannot be stored ('/', '.', '..' and control characters "
            "are not allowed)",
            hint="rename the column",
        )
    return key


def _first_key(row: dict, keys: tuple[str, ...], table: Path, lineno: int, what: str) -> str:
    for key in keys:
        if key in row:
            return key
    raise DatasetError(
        f"{table} line {lineno}: no {what}",
        hint=f"name it one of {', '.join(keys)}",
    )


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _csv_rows(table: Path) -> Iterator[tuple[int, dict[str, object]]]:
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    try:
        with table.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            if reader.fieldnames is None:
                return
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
            for row in reader:
                if None in row:
                    raise DatasetError(
                        f"{table} line {reader.line_num}: more fields than the header has",
                        hint="quote fields that contain the delimiter",
                    )
                yield reader.line_num, row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {table}: {exc}") from None


def _jsonl_rows(table: Path) -> Iterator[tuple[int, dict[str, object]]]:
    try:
        with table.open(encoding="utf-8-sig") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"malformed JSON in {table} at line {lineno}, column {exc.colno}: {exc.msg}",
                        hint="each line must be one JSON object",
                    ) from None
                except RecursionError:
                    raise DatasetError(
                        f"{table} line {lineno} nests JSON too deeply to read",
                        hint="each line must be one flat JSON object",
                    ) from None
                if not isinstance(row, dict):
                    raise DatasetError(f"{table} line {lineno}: expected a JSON object")
                yield lineno, {str(k).lower(): v for k, v in row.items()}
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {table}: {exc}") from None
