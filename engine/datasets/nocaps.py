"""nocaps: the official COCO-like JSON (`nocaps_val_4500_captions.json`, `nocaps_<split>_*.json`).

The domain (in-domain / near-domain / out-domain) is nocaps' main axis of analysis, so it
is both an attribute and the category (primary = domain) of every image; that lets
`gap --by-category` compare the gap across domains directly. The test split ships
without captions: its images are kept with none (image-side analyses still work).
"""

from __future__ import annotations

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

DEFAULT_SPLIT = "val"
DOMAINS = ["in-domain", "near-domain", "out-domain"]


def annotation_files(root: Path) -> dict[str, Path]:
    """split -> annotation file; a captions file wins over an image-info file of that split."""
    found: dict[str, Path] = {}
    for folder in (root, root / "annotations"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("nocaps_*_*.json")):
            split = path.stem.split("_")[1]
            if split not in found or "captions" in path.stem:
                found[split] = path
    return found


def load(data_root: Path | None, split: str | None, *, kind: str, **options: object) -> Manifest:
    reject_options(kind, options)
    root = require_dir(require_root(data_root, kind), kind)
    available = annotation_files(root)
    if not available:
        raise DatasetError(
            f"missing annotation file {root / 'nocaps_val_4500_captions.json'}",
            hint=f"download it from nocaps.org into {root}",
        )
    split = pick_split(list(available), split, kind=kind, root=root, default=DEFAULT_SPLIT)
    path = available[split]
    data, digest = load_json(path)
    with annotation_structure(path, "a nocaps annotation file"):
        images = {int(image["id"]): image for image in data["images"]}
        captions: dict[int, list[str]] = defaultdict(list)
        for ann in sorted(data.get("annotations", []), key=lambda a: int(a["id"])):
            if int(ann["image_id"]) not in images:
                raise DatasetError(f"{path}: caption {ann['id']} refers to an unknown image")
            captions[int(ann["image_id"])].append(caption_text(ann["caption"], path, ann["id"]))
        image_dir = first_existing_dir(root, [split, "images"])
        records = [
            _record(image_id, images[image_id], captions, image_dir) for image_id in sorted(images)
        ]
    unknown = sorted({r.primary for r in records} - set(DOMAINS) - {None})
    if unknown:
        raise DatasetError(f"{path}: unknown nocaps domain {unknown[0]!r}")
    require_records(records, path, kind)
    return Manifest(
        dataset="nocaps",
        split=split,
        root=str(root),
        records=records,
        category_names=list(DOMAINS),
        annotation_sha256=describe_hashes({path.name: digest}),
        prompt_templates=[],  # domains are not visual classes: no zero-shot prompts
    )


def _record(
    image_id: int, image: dict, captions: dict[int, list[str]], image_dir: str
) -> ImageRecord:
    domain = image.get("domain")
    attributes = {"open_images_id": str(image.get("open_images_id", ""))}
    if domain is not None:
        attributes["domain"] = str(domain)
    return ImageRecord(
        id=str(image_id),
        path=join_relative(image_dir, str(image["file_name"])),
        captions=captions.get(image_id, []),
        categories=[str(domain)] if domain is not None else [],
        primary=str(domain) if domain is not None else None,
        attributes=attributes,
    )
