"""COCO: the official `captions_<split>.json` and, when present, `instances_<split>.json`.

Every caption of every image is kept (sorted by annotation id). Categories come from the
instances file: every category present in an image, and one deterministic primary
category, the one with the largest total annotated area (ties: lower category id), so
per-category analyses are reproducible across runs and machines.
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
    require_root,
)

DEFAULT_SPLIT = "val2017"
#: CLIP-style templates (from CLIP's ImageNet set) that suit COCO's object photos
PHOTO_TEMPLATES = [
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of many {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a close-up photo of a {}.",
    "a cropped photo of the {}.",
]
#: a segmentation value: a polygon list (numbers and brackets only) or an RLE object
_SEGMENTATION = re.compile(rb'"segmentation"\s*:\s*(?:\[[\d\s.,eE+\-\[\]]*\]|\{[^{}]*\})')


def caption_files(root: Path) -> dict[str, Path]:
    """split -> captions file, from `annotations/` (or the root itself)."""
    found: dict[str, Path] = {}
    for folder in (root, root / "annotations"):
        if folder.is_dir():
            for path in sorted(folder.glob("captions_*.json")):
                found[path.stem.removeprefix("captions_")] = path
    return found


def load(data_root: Path | None, split: str | None, *, kind: str, **options: object) -> Manifest:
    reject_options(kind, options)
    root = require_dir(require_root(data_root, kind), kind)
    available = caption_files(root)
    if not available:
        expected = root / "annotations" / f"captions_{split or DEFAULT_SPLIT}.json"
        raise DatasetError(
            f"missing annotation file {expected}",
            hint=f"unpack COCO's annotations_trainval2017.zip (cocodataset.org) into {root}",
        )
    split = pick_split(list(available), split, kind=kind, root=root, default=DEFAULT_SPLIT)
    captions_path = available[split]
    image_files, captions, captions_sha = _read_captions(captions_path)
    hashes = {captions_path.name: captions_sha}

    instances_path = captions_path.parent / f"instances_{split}.json"
    categories: dict[int, list[str]] = {}
    primary: dict[int, str] = {}
    names: list[str] = []
    supercategories: dict[str, str] = {}
    if instances_path.is_file():
        names, supercategories, categories, primary, instances_sha = _read_instances(instances_path)
        hashes[instances_path.name] = instances_sha

    image_dir = first_existing_dir(root, [split, f"images/{split}"])
    records = [
        ImageRecord(
            id=str(image_id),
            path=join_relative(image_dir, image_files[image_id]),
            captions=captions.get(image_id, []),
            categories=categories.get(image_id, []),
            primary=primary.get(image_id),
        )
        for image_id in sorted(image_files)
    ]
    require_records(records, captions_path, kind)
    manifest = Manifest(
        dataset="coco",
        split=split,
        root=str(root),
        records=records,
        category_names=names,
        supercategories=supercategories,
        annotation_sha256=describe_hashes(hashes),
    )
    if names:
        manifest.prompt_templates = list(PHOTO_TEMPLATES)
    return manifest


def _read_captions(path: Path) -> tuple[dict[int, str], dict[int, list[str]], str]:
    data, digest = load_json(path)
    with annotation_structure(path, "a COCO captions file"):
        image_files = {int(image["id"]): str(image["file_name"]) for image in data["images"]}
        captions: dict[int, list[str]] = defaultdict(list)
        for ann in sorted(data["annotations"], key=lambda a: int(a["id"])):
            image_id = int(ann["image_id"])
            if image_id not in image_files:
                raise DatasetError(
                    f"{path}: caption {ann['id']} refers to image {image_id}, "
                    "which is not in its image list"
                )
            captions[image_id].append(caption_text(ann["caption"], path, ann["id"]))
    return image_files, captions, digest


def _read_instances(
    path: Path,
) -> tuple[list[str], dict[str, str], dict[int, list[str]], dict[int, str], str]:
    """(category names in id order, supercategories, categories and primary per image, sha)."""
    data, digest = load_json(path, prepare=_drop_segmentation)
    with annotation_structure(path, "a COCO instances file"):
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        name_of = {int(c["id"]): str(c["name"]) for c in cats}
        supercategories = {str(c["name"]): str(c.get("supercategory", "")) for c in cats}
        area: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for ann in data["annotations"]:
            category_id = int(ann["category_id"])
            if category_id not in name_of:
                raise DatasetError(
                    f"{path}: annotation {ann['id']} has unknown category {category_id}"
                )
            area[int(ann["image_id"])][category_id] += float(ann.get("area", 0.0))
    names = [name_of[int(c["id"])] for c in cats]
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: category names are not unique")
    categories = {
        image_id: [name_of[c] for c in sorted(totals)] for image_id, totals in area.items()
    }
    primary = {
        image_id: name_of[min(totals, key=lambda c: (-totals[c], c))]
        for image_id, totals in area.items()
    }
    return names, supercategories, categories, primary, digest


def _drop_segmentation(raw: bytes) -> bytes:
    """Segmentations are ~77% of COCO's instances bytes and never read here: cutting them
    before parsing loads train2017-sized files ~1.8x faster with far less memory
    (benchmarks/bench_coco_load.py)."""
    return _SEGMENTATION.sub(b'"segmentation":0', raw)
