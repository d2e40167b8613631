"""`mgap verify`: every invariant of a store, checked one by one, every problem listed.

A check takes the open file and what earlier checks learnt (`_View`) and returns problem
lines. Structural checks (names, kinds, shapes, dtypes, attributes, self-containment) read
no embeddings; readers run them on open so a damaged store fails with one line instead of
deep inside a command. Content checks (ids, ranges, progress, skips, block checksums,
non-finite rows) read the payload and run only in `verify`. A check that meets something
it cannot even read reports that as a problem: verify never crashes on a damaged file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mgap.core.errors import StoreError
from mgap.store import checksum, probe
from mgap.store import schema as S
from mgap.store.contained import containment_problems
from mgap.store.layers import SPACES, dataset_name, group_name
from mgap.store.naming import sidecar

_STRING_SETS = (S.IMAGE_IDS, S.IMAGE_PATHS, S.TEXT_CAPTIONS, S.CATEGORY_NAMES, S.CATEGORY_SUPER)
_REQUIRED = (
    *_STRING_SETS,
    S.IMAGE_VALID,
    S.IMAGE_PRIMARY,
    S.IMAGE_LABELS,
    S.TEXT_IMAGE_ROW,
    S.PROGRESS,
)


def _sides(f: h5py.File) -> dict[str, tuple[str, str | None]]:
    """Embedding dataset -> (row-count key of `_View`, validity dataset in its CRC).

    The clean image side, every perturbed image side (`mgap extract --perturb`), the text
    side, and every per-layer dataset of either side (`mgap extract --layers`).
    """
    sides: dict[str, tuple[str, str | None]] = {S.IMAGE_EMB: ("n", S.IMAGE_VALID)}
    perturbed = f.get(S.IMAGE_PERTURBED)
    if isinstance(perturbed, h5py.Group):
        for setting in perturbed:
            sides[S.perturbed_embeddings(setting)] = ("n", S.IMAGE_VALID)
    sides[S.TEXT_EMB] = ("m", None)
    for side, rows in (("image", ("n", S.IMAGE_VALID)), ("text", ("m", None))):
        sides.update(dict.fromkeys(_layer_datasets(f, side), rows))
    return sides


def _layer_datasets(f: h5py.File, side: str) -> list[str]:
    """Every `/<side>s/layers/<space>/<layer>` dataset present in the file."""
    group = f.get(group_name(side))
    if not isinstance(group, h5py.Group):
        return []
    return [
        dataset_name(side, space, int(k))
        for space in SPACES
        if isinstance(group.get(space), h5py.Group)
        for k in group[space]
        if k.isdigit()
    ]


@dataclass
class _View:
    """The open file plus the sizes and attributes that later checks rely on."""

    f: h5py.File
    path: Path
    attrs: dict[str, object] = field(default_factory=dict)
    n: int = 0
    m: int = 0
    c: int = 0
    block_rows: int = S.BLOCK_ROWS
    schema_version: int = S.SCHEMA_VERSION
    shapes_ok: bool = True

    def dataset(self, name: str) -> h5py.Dataset | None:
        obj = self.f.get(name)
        return obj if isinstance(obj, h5py.Dataset) else None


def _read_attrs(f: h5py.File) -> tuple[dict[str, object], list[str]]:
    attrs: dict[str, object] = {}
    problems = []
    for key in list(f.attrs):
        try:
            value = f.attrs[key]
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
            problems.append(f"attribute {key!r} cannot be read ({type(exc).__name__})")
            continue
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"attribute {key!r} is not valid UTF-8")
                continue
        if isinstance(value, np.generic):
            value = value.item()
        attrs[key] = value
    return attrs, problems


# ---- structural checks ---------------------------------------------------------------
def check_containment(v: _View) -> list[str]:
    return containment_problems(v.f, v.path)


def check_required(v: _View) -> list[str]:
    problems = [f"/{name} is missing" for name in _REQUIRED if v.dataset(name) is None]
    if problems:
        v.shapes_ok = False
    return problems


def check_attributes(v: _View) -> list[str]:
    attrs, problems = _read_attrs(v.f)
    v.attrs = attrs
    status = attrs.get("status")
    if status not in S.STATUSES:
        problems.append(f"status attribute is {status!r}, not one of {', '.join(S.STATUSES)}")
    block = attrs.get("block_rows", S.BLOCK_ROWS)
    if isinstance(block, bool) or not isinstance(block, int) or not 1 <= block <= S.MAX_BLOCK_ROWS:
        problems.append(
            f"block_rows attribute is {block!r}, not an integer in 1..{S.MAX_BLOCK_ROWS}"
        )
        v.shapes_ok = False
    else:
        v.block_rows = block
    version = attrs.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"schema_version attribute is {version!r}, not a positive integer")
    elif version > S.SCHEMA_VERSION:
        problems.append(f"schema_version {version} is newer than this mgap ({S.SCHEMA_VERSION})")
    else:
        v.schema_version = version
    geometry = attrs.get("geometry", S.GEOMETRY_EUCLIDEAN) or S.GEOMETRY_EUCLIDEAN
    if geometry not in (S.GEOMETRY_EUCLIDEAN, S.GEOMETRY_LORENTZ):
        problems.append(f"geometry attribute is {geometry!r}, not euclidean or lorentz")
    curvature = attrs.get("curvature", 0.0)
    if (
        isinstance(curvature, bool)
        or not isinstance(curvature, int | float)
        or not (math.isfinite(curvature) and curvature >= 0)
    ):
        problems.append(f"curvature attribute is {curvature!r}, not a finite number >= 0")
    return problems


def _one_d(v: _View, name: str, rows: int | None, kinds: str) -> list[str]:
    ds = v.dataset(name)
    if ds is None:
        return [f"/{name} is not a dataset"] if name in v.f else []
    problems = []
    if ds.ndim != 1:
        problems.append(f"/{name} has shape {ds.shape}, expected one dimension")
    elif rows is not None and ds.shape[0] != rows:
        problems.append(f"/{name} has {ds.shape[0]} rows, expected {rows}")
    is_string = h5py.check_string_dtype(ds.dtype) is not None
    if ("s" in kinds) != is_string or (not is_string and ds.dtype.kind not in kinds):
        problems.append(f"/{name} has dtype {ds.dtype}, expected {_kind_words(kinds)}")
    return problems


def _kind_words(kinds: str) -> str:
    return {"s": "UTF-8 strings", "iu": "integers", "u": "uint8 flags", "f": "floats"}[kinds]


def check_shapes(v: _View) -> list[str]:
    """Every dataset's rank, length and dtype against the image, text and category counts."""
    if not v.shapes_ok:
        return []
    sizes = {name: v.dataset(name).shape for name in _REQUIRED}
    if any(len(sizes[name]) != 1 for name in (S.IMAGE_IDS, S.TEXT_CAPTIONS, S.CATEGORY_NAMES)):
        v.shapes_ok = False
        return ["/images/ids, /texts/captions and /categories/names must be one-dimensional"]
    v.n, v.m, v.c = sizes[S.IMAGE_IDS][0], sizes[S.TEXT_CAPTIONS][0], sizes[S.CATEGORY_NAMES][0]
    problems = []
    for name, rows, kinds in (
        (S.IMAGE_IDS, v.n, "s"),
        (S.IMAGE_PATHS, v.n, "s"),
        (S.IMAGE_VALID, v.n, "u"),
        (S.IMAGE_PRIMARY, v.n, "iu"),
        (S.TEXT_CAPTIONS, v.m, "s"),
        (S.TEXT_IMAGE_ROW, v.m, "iu"),
        (S.CATEGORY_NAMES, v.c, "s"),
        (S.CATEGORY_SUPER, v.c, "s"),
        (S.PROGRESS, 2, "iu"),
        (S.SKIPPED_IDS, None, "s"),
        (S.SKIPPED_REASONS, None, "s"),
    ):
        problems += _one_d(v, name, rows, kinds)
    labels = v.dataset(S.IMAGE_LABELS)
    if labels.shape != (v.n, v.c) or labels.dtype.kind not in "iub":
        problems.append(
            f"/{S.IMAGE_LABELS} is {labels.dtype} {labels.shape}, expected ({v.n}, {v.c}) flags"
        )
    attributes = v.f.get(S.IMAGE_ATTRS)
    if attributes is not None and not isinstance(attributes, h5py.Group):
        problems.append(f"/{S.IMAGE_ATTRS} is not a group")
    elif attributes is not None:
        for key in attributes:
            problems += _one_d(v, f"{S.IMAGE_ATTRS}/{key}", v.n, "s")
    skipped = [v.dataset(name) for name in (S.SKIPPED_IDS, S.SKIPPED_REASONS)]
    if (skipped[0] is None) != (skipped[1] is None) or (
        skipped[0] is not None and skipped[0].shape != skipped[1].shape
    ):
        problems.append("/skipped/ids and /skipped/reasons differ")
    problems += _embedding_shapes(v)
    if problems:
        v.shapes_ok = False
    return problems


def _embedding_shapes(v: _View) -> list[str]:
    problems = []
    dims = {}
    for name, (count, _) in _sides(v.f).items():
        if name not in v.f:
            continue
        ds = v.dataset(name)
        rows = getattr(v, count)
        if ds is None or ds.ndim != 2 or ds.shape[0] != rows or ds.shape[1] < 1:
            shape = None if ds is None else ds.shape
            problems.append(f"/{name} has shape {shape}, expected ({rows}, d) with d >= 1")
            continue
        if ds.dtype not in (np.float16, np.float32):
            problems.append(f"/{name} has dtype {ds.dtype}, expected float16 or float32")
        elif v.attrs.get("precision") not in (None, "", str(ds.dtype)):
            problems.append(f"/{name} is {ds.dtype} but precision says {v.attrs['precision']!r}")
        dims[name] = ds.shape[1]
        problems += _checksum_shape(v, name, rows)
    if not dims and v.shapes_ok:
        problems.append("the store has neither image nor text embeddings")
    problems += _prompt_shapes(v, dims.get(S.TEXT_EMB))
    return problems


def _checksum_shape(v: _View, name: str, rows: int) -> list[str]:
    sums = v.f.get(S.checksum_name(name))
    if sums is None:
        return [f"/{S.checksum_name(name)} is missing"] if v.schema_version >= 2 else []
    expected = (checksum.n_blocks(rows, v.block_rows),)
    if not isinstance(sums, h5py.Dataset) or sums.shape != expected or sums.dtype != np.uint32:
        return [f"/{S.checksum_name(name)} is not {expected} uint32 block checksums"]
    return []


def _prompt_shapes(v: _View, text_dim: int | None) -> list[str]:
    prompts = v.f.get(S.PROMPTS)
    if prompts is None:
        return []
    if not isinstance(prompts, h5py.Group):
        return [f"/{S.PROMPTS} is not a group"]
    problems = []
    for key in prompts:
        names, emb = prompts[key].get("names"), prompts[key].get("embeddings")
        if not isinstance(names, h5py.Dataset) or not isinstance(emb, h5py.Dataset):
            problems.append(f"/{S.PROMPTS}/{key} lacks names or embeddings")
            continue
        problems += _one_d(v, f"{S.PROMPTS}/{key}/names", None, "s")
        if emb.ndim != 2 or emb.shape[0] != names.shape[0] or emb.dtype.kind != "f":
            problems.append(f"/{S.PROMPTS}/{key}/embeddings has shape {emb.shape}, expected (K, d)")
        elif text_dim is not None and emb.shape[1] != text_dim:
            problems.append(f"/{S.PROMPTS}/{key} has dim {emb.shape[1]}, the texts {text_dim}")
    return problems


# ---- content checks ------------------------------------------------------------------
def _strings(ds: h5py.Dataset) -> list[str]:
    """Decoded strings; raises UnicodeDecodeError on invalid UTF-8."""
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in ds[...]]


def check_strings(v: _View) -> list[str]:
    problems = []
    names = list(_STRING_SETS) + [f"{S.IMAGE_ATTRS}/{k}" for k in v.f.get(S.IMAGE_ATTRS, {})]
    names += [name for name in (S.SKIPPED_IDS, S.SKIPPED_REASONS) if name in v.f]
    names += [f"{S.PROMPTS}/{key}/names" for key in v.f.get(S.PROMPTS, {})]
    for name in names:
        try:
            _strings(v.dataset(name))
        except UnicodeDecodeError:
            problems.append(f"/{name} holds text that is not valid UTF-8")
    if not problems:
        ids = _strings(v.dataset(S.IMAGE_IDS))
        if len(set(ids)) != len(ids):
            problems.append(f"{len(ids) - len(set(ids))} image ids are duplicates")
    return problems


def check_ranges(v: _View) -> list[str]:
    problems = []
    rows = v.dataset(S.TEXT_IMAGE_ROW)[...]
    if rows.size and (rows.min() < 0 or rows.max() >= v.n):
        problems.append("a caption points at an image row that does not exist")
    primary = v.dataset(S.IMAGE_PRIMARY)[...]
    if primary.size and (primary.min() < -1 or primary.max() >= v.c):
        problems.append("a primary category index is out of range")
    for name in (S.IMAGE_VALID, S.IMAGE_LABELS):
        values = v.dataset(name)[...]
        if values.size and values.max() > 1:
            problems.append(f"/{name} holds values other than 0 and 1")
    return problems


def check_shared_space(v: _View) -> list[str]:
    """Both sides in one space: gap and retrieval compare image rows with text rows.

    Structural: `mgap import` and extraction never write such a store, so a reader
    meeting one refuses it on open rather than deep inside an analysis.
    """
    if v.shapes_ok and S.IMAGE_EMB in v.f and S.TEXT_EMB in v.f:
        d_image, d_text = v.f[S.IMAGE_EMB].shape[1], v.f[S.TEXT_EMB].shape[1]
        if d_image != d_text:
            return [f"image dim {d_image} differs from text dim {d_text}"]
    return []


def _progress(v: _View) -> tuple[int, int]:
    done = v.dataset(S.PROGRESS)[...]
    return int(done[0]), int(done[1])


def check_progress(v: _View) -> list[str]:
    images_done, texts_done = _progress(v)
    problems = []
    if not 0 <= images_done <= v.n or not 0 <= texts_done <= v.m:
        return [f"/progress is ({images_done}, {texts_done}), outside (0..{v.n}, 0..{v.m})"]
    if v.attrs.get("status") != S.STATUS_COMPLETE:
        problems.append(f"status is {v.attrs.get('status')!r}, not complete")
    if S.IMAGE_EMB in v.f and images_done != v.n:
        problems.append(f"{images_done} of {v.n} image rows written")
    if S.TEXT_EMB in v.f and texts_done != v.m:
        problems.append(f"{texts_done} of {v.m} text rows written")
    return problems


def check_skipped(v: _View) -> list[str]:
    images_done, _ = _progress(v)
    if S.IMAGE_EMB not in v.f or images_done != v.n or S.SKIPPED_IDS not in v.f:
        return []
    unembedded = v.n - int(np.count_nonzero(v.dataset(S.IMAGE_VALID)[...]))
    recorded = v.dataset(S.SKIPPED_IDS).shape[0]
    journal = sidecar(v.path, ".skipped.jsonl")
    if unembedded != recorded and not journal.exists():
        return [f"{unembedded} image rows are not embedded but {recorded} skips are recorded"]
    return []


def check_checksums(v: _View) -> list[str]:
    problems = []
    done = dict(zip(("n", "m"), _progress(v), strict=True))
    for name, (count, valid) in _sides(v.f).items():
        sums = S.checksum_name(name)
        if name not in v.f or sums not in v.f:
            continue
        bad = checksum.damaged_blocks(v.f, name, valid, sums, done[count], v.block_rows)
        if bad:
            rows = ", ".join(
                f"{k * v.block_rows}-{min((k + 1) * v.block_rows, done[count]) - 1}"
                for k in bad[:5]
            )
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            problems.append(f"/{name}: {len(bad)} blocks fail their checksum (rows {rows}{more})")
    return problems


def check_values(v: _View) -> list[str]:
    """No NaN/inf and no all-zero row among the rows that count as embedded."""
    problems = []
    done = dict(zip(("n", "m"), _progress(v), strict=True))
    valid = v.dataset(S.IMAGE_VALID)[...].astype(bool)
    for name, (count, flags) in _sides(v.f).items():
        if name not in v.f:
            continue
        stop, keep = done[count], valid if flags else None
        side = "text" if name == S.TEXT_EMB else name.removesuffix("/embeddings")
        ds, bad, zero = v.dataset(name), 0, 0
        for lo in range(0, stop, v.block_rows):
            block = ds[lo : min(lo + v.block_rows, stop)].astype(np.float32)
            if keep is not None:
                block = block[keep[lo : lo + block.shape[0]]]
            bad += int((~np.isfinite(block).all(axis=1)).sum())
            zero += int((~np.any(block != 0, axis=1)).sum())
        if bad:
            problems.append(f"{bad} {side} embeddings contain NaN or inf")
        if zero:
            problems.append(f"{zero} {side} embeddings are all zeros")
    for key, group in v.f.get(S.PROMPTS, {}).items():
        if not np.isfinite(group["embeddings"][...]).all():
            problems.append(f"/{S.PROMPTS}/{key}/embeddings contain NaN or inf")
    return problems


Check = Callable[[_View], list[str]]
#: run on every open (cheap: no payload is read)
STRUCTURAL: tuple[Check, ...] = (
    check_containment,
    check_required,
    check_attributes,
    check_shapes,
    check_shared_space,
)
#: run by `mgap verify` after the structural checks pass
CONTENT: tuple[Check, ...] = (
    check_strings,
    check_ranges,
    check_progress,
    check_skipped,
    check_checksums,
    check_values,
)


#: what h5py and numpy raise on bytes that are not what the schema says
_UNREADABLE = (
    OSError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    UnicodeError,
    RuntimeError,
)


def _run(v: _View, checks: tuple[Check, ...]) -> list[str]:
    problems: list[str] = []
    for check in checks:
        try:
            problems += check(v)
        except _UNREADABLE as exc:
            name = check.__name__.removeprefix("check_")
            problems.append(f"{name} could not be read: {type(exc).__name__}: {exc}".strip())
            v.shapes_ok = False
        if check is check_containment and problems:
            break  # never follow a link out of the store
    return problems


def structural_problems(f: h5py.File, path: str | os.PathLike) -> list[str]:
    """Problems that make a store unusable, found without reading embeddings."""
    return _run(_View(f, Path(path)), STRUCTURAL)


def verify_store(path: str | os.PathLike) -> list[str]:
    """Reasons the store at `path` is not a consistent, complete store; [] when it is."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(
            f"store {path} does not exist or is not a file", hint="check the path or `mgap ls`"
        )
    hazard = probe.probe(path)
    if hazard:
        return [hazard]
    try:
        f = h5py.File(path, "r", locking=False)
    except _UNREADABLE as exc:
        return [f"not a readable HDF5 file ({' '.join(str(exc).split())[:200]})"]
    with f:
        v = _View(f, path)
        problems = _run(v, STRUCTURAL)
        if not problems and v.shapes_ok:
            problems = _run(v, CONTENT)
    return problems
