"""What every dataset loader produces: a manifest of images with captions and labels.

A manifest is pure metadata (ids, paths, captions, categories, attributes); pixels are
read lazily by `load_image`, so the extraction job can decode in DataLoader workers and
a text-only model never opens an image. Loaders must be picklable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgap.engine.datasets.images import open_rgb


@dataclass
class ImageRecord:
    id: str
    path: str  # relative to Manifest.root; "" for generated images
    captions: list[str]
    categories: list[str] = field(default_factory=list)  # every category present
    primary: str | None = None  # one deterministic category (COCO: largest total area)
    attributes: dict[str, str] = field(default_factory=dict)
    #: the file's real name relative to the root where `path` had to be escaped (a name
    #: that is not UTF-8, see `printable_name`); "" when `path` is the name
    source: str = ""

    @property
    def file(self) -> str:
        return self.source or self.path


def printable_name(name: str) -> str:
    """A file name as text that HDF5 can store: bytes that are not UTF-8 (which Python
    keeps as lone surrogates) become backslash escapes (`caf\\xe9.jpg`); others unchanged."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class Manifest:
    dataset: str  # coco, flickr30k, nocaps, csv, jsonl, imagefolder, synthetic
    split: str
    root: str
    records: list[ImageRecord]
    category_names: list[str] = field(default_factory=list)
    supercategories: dict[str, str] = field(default_factory=dict)  # category -> supercategory
    annotation_sha256: str = ""
    #: prompt templates for zero-shot classification, "{}" stands for the class name
    prompt_templates: list[str] = field(default_factory=lambda: ["a photo of a {}."])
    #: zero-shot prompts for per-image attributes: attribute key -> templates ("{}" = value)
    label_prompts: dict[str, list[str]] = field(default_factory=dict)
    #: how a class name reads inside a prompt ("golden_retriever" -> "golden retriever")
    display_names: dict[str, str] = field(default_factory=dict)
    #: extra store attributes describing the source (WebDataset: shard and sample counts)
    provenance: dict[str, object] = field(default_factory=dict)
    #: images are encoded files (False: drawn in memory, so there are no bytes to read)
    encoded: bool = True

    def limit(self, n: int | None) -> Manifest:
        if n is None:
            return self
        return dataclasses.replace(self, records=self.records[:n])

    def slice(self, start: int, stop: int) -> Manifest:
        """Records [start, stop) with every other field kept (one rank's share)."""
        return dataclasses.replace(self, records=self.records[start:stop])

    def image_bytes(self, index: int) -> bytes:
        """The encoded image of record `index`: a file under `root` (tar shards override)."""
        from mgap.engine.datasets.files import read_regular_file

        return read_regular_file(Path(self.root) / self.records[index].file)  # FIFO-safe

    def images_bytes(self, indices: Sequence[int]) -> Iterator[bytes | Exception]:
        """The encoded images of `indices` in order, each its bytes or the error that names
        it: a worker's batch of files is read ahead on the reader thread while it decodes."""
        from mgap.engine.datasets.files import read_regular_files

        return read_regular_files([Path(self.root) / self.records[i].file for i in indices])

    def load_image(self, index: int, draft_to: int | None = None):
        """The PIL image of record `index`, converted to RGB. Raises on unreadable files.

        `draft_to`: decode large JPEGs at a reduced DCT scale, never below that many
        pixels on the short side (see `mgap.engine.extract.decode`).
        """
        return open_rgb(self.image_bytes(index), draft_to)

    # ---- the store layout of this manifest ------------------------------------------
    def captions_and_rows(self) -> tuple[list[str], np.ndarray]:
        captions: list[str] = []
        rows: list[int] = []
        for i, record in enumerate(self.records):
            captions.extend(record.captions)
            rows.extend([i] * len(record.captions))
        return captions, np.asarray(rows, dtype=np.int64)

    def label_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(primary index per image, -1 if none; multi-hot labels) over `category_names`."""
        index = {name: i for i, name in enumerate(self.category_names)}
        primary = np.full(len(self.records), -1, dtype=np.int32)
        labels = np.zeros((len(self.records), len(self.category_names)), dtype=np.uint8)
        for i, record in enumerate(self.records):
            for name in record.categories:
                labels[i, index[name]] = 1
            if record.primary is not None:
                primary[i] = index[record.primary]
        return primary, labels

    def attribute_columns(self) -> dict[str, list[str]]:
        keys: Sequence[str] = sorted({k for r in self.records for k in r.attributes})
        return {k: [r.attributes.get(k, "") for r in self.records] for k in keys}
