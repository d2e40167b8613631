"""Flickr30k: Karpathy's `dataset_flickr30k.json` (train/val/test), or Kaggle's `results.csv`.

The Karpathy split is what retrieval papers report on (the 1k-image test split), so it
is preferred when both files are present. Image ids are the Flickr file stems, which is
what other tools use to align rows.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from mgap.core.errors import DatasetError
from mgap.engine.datasets.base import ImageRecord, Manifest
from mgap.engine.datasets.files import (
    annotation_structure,
    caption_text,
    describe_hashes,
    first_existing_dir,
    join_relative,
    load_json,
    pick_split,
    reject_options,
    require_dir,
    require_records,
    require_regular,
    require_root,
    sha256_file,
)

KARPATHY_NAME = "dataset_flickr30k.json"
CSV_NAME = "results.csv"
DEFAULT_SPLIT = "test"
#: the split name of results.csv, which has no splits
CSV_SPLIT = "all"
IMAGE_DIRS = ["flickr30k-images", "flickr30k_images", "images", "."]
_NUMBERED = re.compile(r"\s*(\d+)\s+(.*)")


def annotation_file(root: Path) -> Path | None:
    for name in (KARPATHY_NAME, CSV_NAME):
        for folder in (root, root / "annotations"):
            if (folder / name).is_file():
                return folder / name
    return None


def load(data_root: Path | None, split: str | None, *, kind: str, **options: object) -> Manifest:
    reject_options(kind, options)
    root = require_dir(require_root(data_root, kind), kind)
    path = annotation_file(root)
    if path is None:
        raise DatasetError(
            f"missing annotation file {root / KARPATHY_NAME}",
            hint=f"put Karpathy's {KARPATHY_NAME} (or Kaggle's {CSV_NAME}) in {root}",
        )
    if path.name == KARPATHY_NAME:
        split, entries, digest = _read_karpathy(path, split, kind, root)
    else:
        split = pick_split([CSV_SPLIT], split, kind=kind, root=root)
        entries, digest = _read_results_csv(path), sha256_file(path)
    image_dir = first_existing_dir(root, IMAGE_DIRS)
    records = [
        ImageRecord(id=Path(name).stem, path=join_relative(image_dir, name), captions=captions)
        for name, captions in entries
    ]
    require_records(records, path, kind)
    return Manifest(
        dataset="flickr30k",
        split=split,
        root=str(root),
        records=records,
        annotation_sha256=describe_hashes({path.name: digest}),
    )


def _read_karpathy(
    path: Path, split: str | None, kind: str, root: Path
) -> tuple[str, list[tuple[str, list[str]]], str]:
    """(split, [(file name, captions)] in Karpathy's imgid order, sha)."""
    data, digest = load_json(path)
    with annotation_structure(path, "a Karpathy-split Flickr30k file"):
        images = data["images"]
        available = sorted({str(image["split"]) for image in images})
        split = pick_split(available, split, kind=kind, root=root, default=DEFAULT_SPLIT)
        chosen = sorted((i for i in images if i["split"] == split), key=lambda i: int(i["imgid"]))
        entries = [
            (
                str(image["filename"]),
                [
                    caption_text(s["raw"], path, image["filename"])
                    for s in sorted(image["sentences"], key=_sentid)
                ],
            )
            for image in chosen
        ]
    return split, entries, digest


def _sentid(sentence: dict) -> int:
    return int(sentence.get("sentid", 0))


def _read_results_csv(path: Path) -> list[tuple[str, list[str]]]:
    """`image_name| comment_number| comment` rows; images in file order, captions by number.

    The public file has one row whose second separator is missing ("x.jpg| 4 A dog ..."),
    so a number followed by text in the second field is accepted too.
    """
    captions: dict[str, list[tuple[int, str]]] = defaultdict(list)
    try:
        lines = require_regular(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    start = 1 if lines and lines[0].lower().startswith("image_name") else 0
    for lineno, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("|", 2)]
        if len(fields) == 2 and (match := _NUMBERED.fullmatch(fields[1])):
            fields = [fields[0], match.group(1), match.group(2)]
        if len(fields) != 3 or not fields[1].isdigit():
            raise DatasetError(
                f"malformed row in {path} at line {lineno}",
                hint="expected 'image_name| comment_number| comment'",
            )
        captions[fields[0]].append((int(fields[1]), fields[2]))
    return [(name, [text for _, text in sorted(rows)]) for name, rows in captions.items()]
