"""Class folders: `root/<class>/*.jpg` (or `root/<split>/<class>/...` with --split).

The folder name is the category (primary and only label). Captions are the prompt
templates filled with the class name ("a photo of a golden retriever."), so a CLIP
model's text side holds the zero-shot class prompts and the gap is measured between
images and the prompts of their class. Images are found recursively inside each class
folder, like torchvision's ImageFolder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mgap.core.errors import UsageError
from mgap.engine.datasets.base import ImageRecord, Manifest, printable_name
from mgap.engine.datasets.files import (
    IMAGE_EXTENSIONS,
    describe_hashes,
    reject_options,
    require_dir,
    require_records,
    require_root,
)

DEFAULT_TEMPLATES = ["a photo of a {}."]


def image_files(folder: Path) -> list[Path]:
    """Image files under folder (recursively, hidden entries skipped), sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            Path(dirpath) / name
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        )
    return sorted(found)


def class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_direct_images(folder: Path) -> bool:
    return any(
        entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
        for entry in os.scandir(folder)
    )


def is_class_layout(folder: Path) -> bool:
    """Every sub-folder holds images directly: how class folders look."""
    classes = class_dirs(folder)
    return bool(classes) and all(has_direct_images(c) for c in classes)


def split_dirs(root: Path) -> list[str]:
    """Sub-folders laid out as splits: they hold class folders, not images."""
    return [d.name for d in class_dirs(root) if not has_direct_images(d) and is_class_layout(d)]


def class_name_text(name: str) -> str:
    """How a folder name reads in a prompt: `golden_retriever` -> `golden retriever`."""
    return " ".join(name.replace("_", " ").split())


def load(data_root: Path | None, split: str | None, *, kind: str, **options: object) -> Manifest:
    reject_options(kind, options, allowed=("templates",))
    templates = _templates(options.get("templates"))
    root = require_dir(require_root(data_root, kind), kind)
    if split is not None:
        folder = root / split
        if not folder.is_dir():
            listed = ", ".join(split_dirs(root)) or "none"
            raise UsageError(
                f"unknown split {split!r} for --dataset imagefolder at {root}",
                hint=f"available splits: {listed}",
            )
    else:
        splits = split_dirs(root)
        if splits and len(splits) == len(class_dirs(root)):
            raise UsageError(
                f"{root} holds splits ({', '.join(splits)}), not class folders",
                hint="pick one with --split",
            )
        folder = root
    records: list[ImageRecord] = []
    for class_dir in class_dirs(folder):
        label = printable_name(class_dir.name)
        captions = [t.format(class_name_text(label)) for t in templates]
        for path in image_files(class_dir):
            relative = path.relative_to(root).as_posix()
            shown = printable_name(relative)  # a name that is not UTF-8 is escaped
            records.append(
                ImageRecord(
                    id=shown,
                    path=shown,
                    captions=list(captions),
                    categories=[label],
                    primary=label,
                    source=relative if shown != relative else "",
                )
            )
    require_records(records, folder, kind)
    listing = hashlib.sha256("\n".join(r.path for r in records).encode()).hexdigest()
    return Manifest(
        dataset="imagefolder",
        split=split if split is not None else root.name,
        root=str(root),
        records=records,
        category_names=sorted({r.primary for r in records if r.primary is not None}),
        annotation_sha256=describe_hashes({"file-listing": listing}),
        prompt_templates=list(templates),
        display_names={
            name: class_name_text(name) for name in {r.primary for r in records} if name
        },
    )


def _templates(value: object) -> list[str]:
    """Templates from the API (a list) or from `-o templates="a photo of a {}.|art of the {}."`."""
    if value is None:
        return list(DEFAULT_TEMPLATES)
    templates = value.split("|") if isinstance(value, str) else value
    if (
        not isinstance(templates, list | tuple)
        or not templates
        or any(not isinstance(t, str) or "{}" not in t for t in templates)
    ):
        raise UsageError("imagefolder templates must be strings containing '{}'")
    for template in templates:
        try:
            template.format("class")
        except (IndexError, KeyError, ValueError):
            raise UsageError(
                f"imagefolder template {template!r} has braces other than one '{{}}'"
            ) from None
    return list(templates)
