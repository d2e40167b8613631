"""The image files behind a store: its recorded dataset root and per-image relative paths.

Jobs that rerun a model on a store's images (attention maps, ViLT's pair scores) read the
same files the embeddings came from; `--data-root` points them elsewhere when the folder
moved.
"""

from __future__ import annotations

from pathlib import Path

from mgap.core.errors import StoreError


def image_root(store, override: Path | None = None) -> Path:
    """The folder the store's image paths are relative to, or one StoreError saying why not."""
    root = override or store.attrs.get("data_root")
    paths = store.image_paths
    if not root or not len(paths) or not all(str(p) for p in paths):
        raise StoreError(
            f"{store.path.name} records no image files (dataset {store.dataset!r})",
            hint="this needs real images: extract from coco, flickr30k, csv or imagefolder, "
            "or pass --data-root",
        )
    return Path(str(root)).expanduser()


def open_images(root: Path, paths: list[str]) -> tuple[list, list[str]]:
    """RGB PIL images (None where unreadable) and the reasons ('' when read)."""
    from PIL import Image

    images, reasons = [], []
    for path in paths:
        try:
            with Image.open(root / path) as img:
                images.append(img.convert("RGB"))
            reasons.append("")
        except (OSError, ValueError) as exc:
            images.append(None)
            reasons.append(f"{type(exc).__name__}: {exc}")
    return images, reasons
