"""A COCO-format folder of N images made from a small real one, for extraction benchmarks
that need more images than `../shared/data/tiny_coco`'s 50 (a GPU pass over 50 images is
over before it is measured).

Image `k` is a hard link (a copy across filesystems) to source image `k mod n` under a new
id, with that image's captions and category annotations, so every file is a real
COCO-sized JPEG and the loader, the decode path and the store see a dataset of N images.

    python benchmarks/coco_copies.py OUT [--images 5000] [--data-root ../shared/data/tiny_coco]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links refused
        shutil.copyfile(source, target)


def write_copies(source_root: Path, out: Path, n_images: int, split: str = "train2017") -> Path:
    """`out` as a COCO root with `n_images` images; returns `out`."""
    notes = source_root / "annotations"
    captions = json.loads((notes / f"captions_{split}.json").read_text())
    instances = json.loads((notes / f"instances_{split}.json").read_text())
    by_image: dict[int, tuple[list, list]] = {im["id"]: ([], []) for im in captions["images"]}
    for a in captions["annotations"]:
        by_image[a["image_id"]][0].append(a)
    for a in instances["annotations"]:
        by_image[a["image_id"]][1].append(a)
    (out / split).mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    sources = captions["images"]
    images, caption_notes, instance_notes = [], [], []
    for k in range(n_images):
        image = dict(sources[k % len(sources)])
        caps, objects = by_image[image["id"]]
        new_id = k + 1
        name = f"{new_id:012d}.jpg"
        link_or_copy(source_root / split / image["file_name"], out / split / name)
        images.append({**image, "id": new_id, "file_name": name})
        caption_notes += [
            {**a, "image_id": new_id, "id": len(caption_notes) + i} for i, a in enumerate(caps)
        ]
        instance_notes += [
            {**a, "image_id": new_id, "id": len(instance_notes) + i} for i, a in enumerate(objects)
        ]
    for kind, doc, notes_ in (
        ("captions", captions, caption_notes),
        ("instances", instances, instance_notes),
    ):
        body = {**doc, "images": images, "annotations": notes_}
        (out / "annotations" / f"{kind}_{split}.json").write_text(json.dumps(body))
    return out


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument(
        "--data-root", type=Path, default=here.parent / "shared" / "data" / "tiny_coco"
    )
    parser.add_argument("--split", default="train2017")
    args = parser.parse_args()
    write_copies(args.data_root, args.out, args.images, args.split)
    print(f"{args.out}: {args.images} COCO images made from {args.data_root}")


if __name__ == "__main__":
    main()
