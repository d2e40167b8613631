"""Load time of COCO's instances file: mgap's loader against a plain `json.load`.

mgap cuts the segmentation polygons out of the bytes before parsing (they are most of
instances_train2017.json and never read). This script writes a synthetic instances file
shaped like train2017 (polygons of ~40 coordinates, some RLE crowd masks), loads it both
ways, checks the categories and primary categories agree, and prints times and the ratio.

    python benchmarks/bench_coco_load.py [--annotations 860000] [--images 118287] [--repeats 3]

Both sides: median of `--repeats` runs (benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from _harness import measure, report

from mgap.engine.datasets.coco import _read_instances


def write_instances(path: Path, n_images: int, n_annotations: int) -> None:
    rng = random.Random(0)
    categories = [{"id": i + 1, "name": f"class{i}", "supercategory": "s"} for i in range(80)]
    annotations = []
    for k in range(n_annotations):
        crowd = k % 100 == 0
        segmentation = (
            {"counts": [rng.randrange(500) for _ in range(60)], "size": [480, 640]}
            if crowd
            else [[round(rng.uniform(0, 640), 2) for _ in range(40)]]
        )
        annotations.append(
            {
                "segmentation": segmentation,
                "area": rng.uniform(10, 1e5),
                "iscrowd": int(crowd),
                "image_id": rng.randrange(n_images),
                "bbox": [1.0, 2.0, 30.0, 40.0],
                "category_id": rng.randint(1, 80),
                "id": k,
            }
        )
    images = [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(n_images)]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )


def baseline(path: Path) -> tuple[dict[int, list[str]], dict[int, str]]:
    """What a peer script does: json.load the whole file, then the same aggregation."""
    with path.open() as handle:
        data = json.load(handle)
    name = {c["id"]: c["name"] for c in data["categories"]}
    area: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for ann in data["annotations"]:
        area[ann["image_id"]][ann["category_id"]] += ann["area"]
    categories = {i: [name[c] for c in sorted(t)] for i, t in area.items()}
    primary = {i: name[min(t, key=lambda c: (-t[c], c))] for i, t in area.items()}
    return categories, primary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=860_000)
    parser.add_argument("--images", type=int, default=118_287)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instances_train2017.json"
        write_instances(path, args.images, args.annotations)
        size_mb = path.stat().st_size / 1e6
        ours = measure(lambda: _read_instances(path), args.repeats)
        theirs = measure(lambda: baseline(path), args.repeats)
    _, _, categories, primary, _ = ours.value
    assert (categories, primary) == theirs.value, "categories or primaries differ"
    print(f"instances file: {size_mb:.0f} MB, {args.annotations} annotations, {args.images} images")
    report("COCO instances (identical categories and primaries)", ours, theirs, "json.load")


if __name__ == "__main__":
    main()
