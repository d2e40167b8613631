"""WebDataset tar shards (LAION, DataComp, CC3M/CC12M, RedCaps) read in place.

`--data-root` is a brace pattern (`DIR/shard-{00000..00099}.tar`, expanded by the
`webdataset` library), one shard, or a list file (one shard per line, relative to the
list). Samples follow the library's conventions: members that share a key
(`webdataset.tariterators.base_plus_ext`) form one sample; the image is the jpg/jpeg/png/
webp member, captions come from `txt` or from a `json` field (`caption`, `captions`,
`text`), and an optional category from `cls` or a `json` field (`category`, `label`).

Each shard's headers are walked to its real end (`tarwalk`): an unreadable region (a
damaged header, zeros before more members, a cut member or a cut shard) becomes one row
named `<shard>@<offset>` that is skipped with the region as its reason, so a damaged shard
never loses samples without a record. The annotation digest a resume compares covers each
shard's size, mtime and raw member headers, so a shard replaced between a kill and the
resume is refused.

Nothing is unpacked to disk. A store needs every row's id and captions before the first
forward pass, so one pass over the tar headers (and the small text members; image bytes
are seeked over) indexes each sample's shard and byte offset. The decode workers then
read each image straight from its shard at that offset: samples split across ranks and
DataLoader workers by row with no duplicates or gaps, and a resume seeks to the first
missing row's shard and offset.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mgap.core.errors import DatasetError, UsageError
from mgap.engine.datasets.base import ImageRecord, Manifest
from mgap.engine.datasets.files import read_file_ranges
from mgap.engine.datasets.tarwalk import Damage, walk_members

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
CAPTION_FIELDS = ("caption", "captions", "text")
CATEGORY_FIELDS = ("category", "label")
LIST_SUFFIXES = (".txt", ".list", ".shards")


def shard_paths(pattern: str) -> list[Path]:
    """The shards named by a brace pattern, a single tar, or a list file; all must exist."""
    from webdataset.shardlists import expand_urls

    if pattern.endswith(LIST_SUFFIXES) and Path(pattern).is_file():
        base = Path(pattern).parent
        lines = Path(pattern).read_text(encoding="utf-8").splitlines()
        names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        paths = [Path(n) if Path(n).is_absolute() else base / n for n in names]
    else:
        paths = [Path(p).expanduser() for p in expand_urls(pattern)]
    if not paths:
        raise DatasetError(f"{pattern} names no shards", hint="give DIR/shard-{00000..00099}.tar")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(
            f"shard {missing[0]} does not exist ({len(missing)} of {len(paths)} shards missing)",
            hint="check the brace pattern or the list file",
        )
    return paths


@dataclass
class _Sample:
    key: str
    image: tuple[str, int, int] | None = None  # member name, data offset, size
    captions: list[str] = field(default_factory=list)
    category: str | None = None


def _json_fields(sample: _Sample, data: bytes) -> None:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # a sample whose json is unreadable keeps what its other members give
    if not isinstance(doc, dict):
        return
    for key in CAPTION_FIELDS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip() and not sample.captions:
            sample.captions = [value.strip()]
        elif isinstance(value, list) and not sample.captions:
            sample.captions = [str(v).strip() for v in value if str(v).strip()]
    for key in CATEGORY_FIELDS:
        if doc.get(key) not in (None, "") and sample.category is None:
            sample.category = str(doc[key]).strip()


def _index_shard(path: Path, digest: Any) -> tuple[list[_Sample], list[Damage]]:
    """Samples of one shard in tar order, from its headers and text members, and every
    region of it that could not be read."""
    from webdataset.tariterators import base_plus_ext

    samples: dict[str, _Sample] = {}
    damage: list[Damage] = []
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            digest.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            for member in walk_members(fh, st.st_size, digest):
                if isinstance(member, Damage):
                    damage.append(member)
                    continue
                if not member.isfile():
                    continue
                key, ext = base_plus_ext(member.name)
                if key is None:
                    continue
                _add_member(fh, samples.setdefault(key, _Sample(key)), member, ext.lower(), digest)
    except OSError as exc:
        raise DatasetError(
            f"{path} is not a readable tar shard ({exc})", hint="check the file"
        ) from None
    if not damage and not any(s.image for s in samples.values()):
        raise DatasetError(
            f"{path} holds no images (no {'/'.join(IMAGE_KEYS)} members)",
            hint="is it a WebDataset shard of image samples?",
        )
    return list(samples.values()), damage


def _add_member(
    fh: BinaryIO, sample: _Sample, member: tarfile.TarInfo, ext: str, digest: Any
) -> None:
    digest.update(f"{member.name}\0{member.size}\0".encode())
    if ext in IMAGE_KEYS and sample.image is None:
        sample.image = (member.name, member.offset_data, member.size)
    elif ext in ("txt", "json", "cls"):
        fh.seek(member.offset_data)
        data = fh.read(member.size)
        digest.update(data)
        _text_member(sample, ext, data)


def _text_member(sample: _Sample, ext: str, data: bytes) -> None:
    text = data.decode("utf-8", errors="replace").strip()
    if ext == "txt" and text:
        sample.captions = [text]
    elif ext == "cls" and text:
        sample.category = text
    elif ext == "json":
        _json_fields(sample, data)


@dataclass
class TarManifest(Manifest):
    """A manifest whose images are members of tar shards, read at their byte offsets."""

    #: image id -> (shard index, data offset, size); the shard paths are in `shards`
    locations: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    #: row id -> why it has no sample: an unreadable region of a shard (`tarwalk.Damage`)
    damaged: dict[str, str] = field(default_factory=dict)

    def image_bytes(self, index: int) -> bytes:
        [data] = self.images_bytes([index])
        if isinstance(data, Exception):
            raise data
        return data

    def images_bytes(self, indices: Sequence[int]) -> Iterator[bytes | Exception]:
        """Each sample's bytes or its error, read ahead on the reader thread as image files
        are (one open per shard and batch, a stalled mount times out)."""
        wanted: list[tuple[Path, int, int]] = []
        for index in indices:
            shard, offset, size = self.locations.get(self.records[index].id, (-1, 0, 0))
            if shard >= 0:
                wanted.append((Path(self.shards[shard]), offset, size))
        reads = read_file_ranges(wanted)
        for index in indices:
            record = self.records[index]
            if record.id in self.damaged:
                yield DatasetError(self.damaged[record.id])
                continue
            if record.id not in self.locations:
                yield DatasetError(f"sample {record.id} has no image ({'/'.join(IMAGE_KEYS)})")
                continue
            data = next(reads)
            shard, _, size = self.locations[record.id]
            if isinstance(data, bytes) and len(data) != size:
                yield DatasetError(f"{self.shards[shard]} is truncated inside sample {record.id}")
            else:
                yield data


def load(root: Path | None, split: str | None, kind: str = "webdataset", **options) -> Manifest:
    if root is None:
        raise UsageError(
            "--dataset webdataset needs --data-root",
            hint="give 'DIR/shard-{00000..00099}.tar', one .tar, or a list file",
        )
    if options:
        raise UsageError(f"--dataset webdataset takes no option {sorted(options)[0]!r}")
    pattern = str(root)
    paths = shard_paths(pattern)
    digest = hashlib.sha256()
    records: list[ImageRecord] = []
    locations: dict[str, tuple[int, int, int]] = {}
    seen: dict[str, Path] = {}
    damaged: dict[str, str] = {}
    for shard, path in enumerate(paths):
        samples, damage = _index_shard(path, digest)
        for region in damage:
            key = f"{path.name}@{region.offset}"
            digest.update(f"{key}\0{region.end}\0{region.what}\0".encode())
            damaged[key] = region.reason(str(path))
            samples.append(_Sample(key))
        for sample in samples:
            if sample.key in seen:
                raise DatasetError(
                    f"sample key {sample.key} appears in {seen[sample.key]} and {path}",
                    hint="keys must be unique across the shards",
                )
            seen[sample.key] = path
            records.append(_record(path, sample))
            if sample.image:
                locations[sample.key] = (shard, sample.image[1], sample.image[2])
    names = sorted({c for r in records for c in r.categories})
    return TarManifest(
        dataset=kind,
        split=split or paths[0].parent.name or "shards",
        root=str(paths[0].parent),
        records=records,
        category_names=names,
        annotation_sha256=digest.hexdigest(),
        provenance={"shards": len(paths), "samples": len(records), "shard_pattern": pattern},
        locations=locations,
        shards=[os.fspath(p) for p in paths],
        damaged=damaged,
    )


def _record(path: Path, sample: _Sample) -> ImageRecord:
    categories = [sample.category] if sample.category else []
    member = sample.image[0] if sample.image else ""
    return ImageRecord(
        id=sample.key,
        path=f"{path.name}#{member}",
        captions=sample.captions,
        categories=categories,
        primary=sample.category,
    )
