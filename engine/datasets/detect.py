"""Recognise dataset layouts in a folder, so the TUI can offer `--dataset/--split` choices.

Counts come from the annotation files alone (one JSON read per split, no image is
opened, COCO's instances file is never read). A folder that holds no annotated dataset
or class folders (tables aside) is searched one level down, so pointing at `~/datasets`
lists every dataset in it.
A recognised but broken dataset is still listed, with the problem that `mgap extract`
would report, instead of vanishing from the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mgap.core.errors import MgapError
from mgap.engine.datasets import coco, flickr30k, imagefolder, nocaps, tabular
from mgap.engine.datasets.files import annotation_structure, load_json


@dataclass
class DetectedDataset:
    kind: str  # the --dataset value
    root: Path  # the --data-root value (a file for csv/jsonl)
    splits: list[str]  # the --split values; empty when the dataset has no splits
    n_images: int  # over all splits
    n_captions: int
    #: split -> (images, captions)
    per_split: dict[str, tuple[int, int]] = field(default_factory=dict)
    problem: str = ""  # why extraction would fail, "" when it looks usable


def detect_dataset(path: Path) -> list[DetectedDataset]:
    path = Path(path).expanduser()
    if path.is_file():
        return _detect_file(path)
    if not path.is_dir():
        return []
    found = _detect_annotated(path)
    if any(d.kind not in tabular.SUFFIXES for d in found):
        return found
    found.extend(_detect_imagefolder(path))
    if any(d.kind == "imagefolder" for d in found):
        return found
    for child in imagefolder.class_dirs(path):
        found.extend(_detect_annotated(child) or _detect_imagefolder(child))
    return found


def _detect_file(path: Path) -> list[DetectedDataset]:
    name, parent = path.name, path.parent
    root = parent.parent if parent.name == "annotations" else parent
    suffix = path.suffix.lower()
    if name in (flickr30k.KARPATHY_NAME, flickr30k.CSV_NAME):
        return _detect_annotated(root, only="flickr30k")
    if name.startswith("nocaps_") and suffix == ".json":
        return _detect_annotated(root, only="nocaps")
    if name.startswith("captions_") and suffix == ".json":
        return _detect_annotated(root, only="coco")
    for kind, suffixes in tabular.SUFFIXES.items():
        if suffix in suffixes:
            return [_detect_table(path, kind)]
    return []


def _detect_annotated(root: Path, only: str | None = None) -> list[DetectedDataset]:
    """Layouts recognised by their annotation files or tables."""
    found: list[DetectedDataset] = []
    if only in (None, "coco") and (files := coco.caption_files(root)):
        found.append(_from_json_splits("coco", root, files))
    if only in (None, "nocaps") and (files := nocaps.annotation_files(root)):
        found.append(_from_json_splits("nocaps", root, files))
    flickr_file = flickr30k.annotation_file(root) if only in (None, "flickr30k") else None
    if flickr_file is not None:
        found.append(_detect_flickr(root, flickr_file))
    if only is None:
        for kind in tabular.SUFFIXES:
            found.extend(
                _detect_table(table, kind)
                for table in tabular.table_files(root, kind)
                if table != flickr_file
            )
    return found


def _from_json_splits(kind: str, root: Path, files: dict[str, Path]) -> DetectedDataset:
    """COCO-like files: (len(images), len(annotations)) per split."""
    per_split: dict[str, tuple[int, int]] = {}
    problems: list[str] = []
    for split, path in sorted(files.items()):
        try:
            data, _ = load_json(path)
            with annotation_structure(path, f"a {kind} annotation file"):
                per_split[split] = (len(data["images"]), len(data.get("annotations", [])))
        except MgapError as exc:
            problems.append(exc.one_line())
    return _summed(kind, root, list(files), per_split, "; ".join(problems))


def _detect_flickr(root: Path, path: Path) -> DetectedDataset:
    try:
        if path.name == flickr30k.CSV_NAME:
            manifest = flickr30k.load(root, None, kind="flickr30k")
            counts = (len(manifest.records), sum(len(r.captions) for r in manifest.records))
            return _summed("flickr30k", root, [manifest.split], {manifest.split: counts})
        data, _ = load_json(path)
        per_split: dict[str, tuple[int, int]] = {}
        with annotation_structure(path, "a Karpathy-split Flickr30k file"):
            for image in data["images"]:
                images, captions = per_split.get(image["split"], (0, 0))
                per_split[image["split"]] = (images + 1, captions + len(image["sentences"]))
        return _summed("flickr30k", root, sorted(per_split), per_split)
    except MgapError as exc:
        return _summed("flickr30k", root, [], {}, exc.one_line())


def _detect_table(path: Path, kind: str) -> DetectedDataset:
    try:
        manifest = tabular.load(path, None, kind=kind)
    except MgapError as exc:
        return DetectedDataset(kind, path, [], 0, 0, problem=exc.one_line())
    n_captions = sum(len(r.captions) for r in manifest.records)
    return DetectedDataset(kind, path, [], len(manifest.records), n_captions)


def _detect_imagefolder(root: Path) -> list[DetectedDataset]:
    splits = imagefolder.split_dirs(root)
    if splits and len(splits) == len(imagefolder.class_dirs(root)):
        per_split = {split: _count_classes(root / split) for split in splits}
        return [_summed("imagefolder", root, splits, per_split)]
    if not imagefolder.is_class_layout(root):
        return []
    n_images, n_captions = _count_classes(root)
    return [DetectedDataset("imagefolder", root, [], n_images, n_captions)]


def _count_classes(folder: Path) -> tuple[int, int]:
    """(images, captions) with the default single prompt template per image."""
    n = sum(len(imagefolder.image_files(c)) for c in imagefolder.class_dirs(folder))
    return n, n * len(imagefolder.DEFAULT_TEMPLATES)


def _summed(
    kind: str,
    root: Path,
    splits: list[str],
    per_split: dict[str, tuple[int, int]],
    problem: str = "",
) -> DetectedDataset:
    return DetectedDataset(
        kind=kind,
        root=root,
        splits=sorted(splits),
        n_images=sum(i for i, _ in per_split.values()),
        n_captions=sum(c for _, c in per_split.values()),
        per_split=per_split,
        problem=problem,
    )
