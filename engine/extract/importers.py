"""`mgap import`: embeddings computed by other tools -> an mgap store.

Layouts read:
- one `.npy` of shape (2, N, d): image rows then text rows, pair i with i (the
  "Mind the Gap" release);
- `--image A --text B` (`.npy`, `.pt`, `.npz`), rows paired i with i, or with
  `--caption-image-row` when there are several captions per image;
- `.pt` pairs named `{dataset}_{model}_img.pt` / `{dataset}_{model}_txt.pt`
  (torch.load with weights_only=True, a tensor or a dict holding one);
- one `.npz` with arrays `image`/`img` and `text`/`txt`.
Hyperbolic (MERU-style) embeddings keep their space components with
`--geometry lorentz --curvature C`.
"""

from __future__ import annotations

import math
import re
import tokenize
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mgap.core.errors import UsageError
from mgap.store import schema as S
from mgap.store.build import store_from_arrays

_IMAGE_KEYS = ("image", "images", "img", "image_embeddings", "image_features")
_TEXT_KEYS = ("text", "texts", "txt", "text_embeddings", "text_features")


def _load_pt(path: Path) -> np.ndarray:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unreadable file in one line
        raise UsageError(
            f"cannot read {path} as a torch tensor file: {exc}".splitlines()[0]
        ) from exc
    if isinstance(obj, dict):
        tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise UsageError(
                f"{path} holds a dict with {len(tensors)} tensors",
                hint="save exactly one tensor per file",
            )
        obj = tensors[0]
    if not isinstance(obj, torch.Tensor):
        raise UsageError(f"{path} does not hold a tensor (found {type(obj).__name__})")
    return obj.detach().float().numpy()


def _regular(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if not path.is_file():
        raise UsageError(f"{path} is not a regular file", hint="pass the embedding file itself")
    return path


def _numeric(array: np.ndarray, path: Path, key: str = "") -> np.ndarray:
    """Real numbers only: strings, objects, complex or structured arrays are refused."""
    where = f"{path}[{key}]" if key else str(path)
    if array.dtype.kind not in "fiub" or array.dtype.names:
        raise UsageError(
            f"{where} holds {array.dtype} values, not real numbers",
            hint="save float embeddings (np.save(path, x.astype('float32')))",
        )
    return array


#: what numpy raises on a damaged .npy/.npz (its header is parsed with `tokenize`)
_UNREADABLE = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    KeyError,
    MemoryError,
    SyntaxError,
    tokenize.TokenError,
    TypeError,
    NotImplementedError,  # a zip member compressed with a method zipfile lacks
)


def load_array(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    suffix = _regular(path).suffix.lower()
    try:
        with warnings.catch_warnings():  # numpy's notes on odd headers are not errors
            warnings.simplefilter("ignore")
            if suffix == ".npy":
                return _numeric(np.load(path, allow_pickle=False), path)
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    return {k: _numeric(data[k], path, k) for k in data.files}
    except _UNREADABLE as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise UsageError(
            f"cannot read {path} as {suffix} ({detail})", hint="re-save it with numpy"
        ) from None
    if suffix in (".pt", ".pth"):
        return _load_pt(path)
    raise UsageError(f"unsupported embedding file {path.name}", hint="use .npy, .npz or .pt")


def _pick(arrays: dict[str, np.ndarray], keys: Sequence[str], path: Path) -> np.ndarray:
    for key in keys:
        if key in arrays:
            return arrays[key]
    raise UsageError(f"{path} has arrays {sorted(arrays)}", hint=f"name them one of {list(keys)}")


def _pair_pt(files: Sequence[Path]) -> tuple[Path, Path] | None:
    img = [f for f in files if re.search(r"_(img|image)\.pth?$", f.name)]
    txt = [f for f in files if re.search(r"_(txt|text)\.pth?$", f.name)]
    if len(img) == 1 and len(txt) == 1:
        return img[0], txt[0]
    return None


def read_pairs(
    files: Sequence[Path], image: Path | None, text: Path | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(image embeddings, text embeddings) from any supported layout."""
    if image is not None or text is not None:
        if files:
            raise UsageError("give either FILE arguments or --image/--text, not both")
        x = None if image is None else load_array(image)
        y = None if text is None else load_array(text)
        if isinstance(x, dict) or isinstance(y, dict):
            raise UsageError("--image/--text take .npy or .pt files, not .npz")
        return x, y
    if not files:
        raise UsageError(
            "nothing to import", hint="pass a (2, N, d) .npy, an .npz, or --image/--text"
        )
    if len(files) == 2:
        pair = _pair_pt(files)
        if pair is None:
            raise UsageError(
                "two files given but not an *_img.pt/*_txt.pt pair", hint="use --image A --text B"
            )
        return load_array(pair[0]), load_array(pair[1])
    if len(files) > 2:
        raise UsageError(
            f"{len(files)} files given", hint="pass one file, an _img/_txt pair, or --image/--text"
        )
    data = load_array(files[0])
    if isinstance(data, dict):
        return _pick(data, _IMAGE_KEYS, files[0]), _pick(data, _TEXT_KEYS, files[0])
    if data.ndim != 3 or data.shape[0] != 2:
        raise UsageError(
            f"{files[0]} has shape {data.shape}",
            hint="a single .npy must be (2, N, d): image rows then text rows",
        )
    return data[0], data[1]


def _lines(path: Path | None, expected: int, what: str) -> list[str] | None:
    if path is None:
        return None
    try:
        lines = _regular(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text", hint="re-save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(lines) != expected:
        raise UsageError(f"{path} has {len(lines)} lines but there are {expected} {what}")
    return lines


def _row_numbers(path: Path) -> np.ndarray:
    try:
        text = _regular(path).read_text(encoding="utf-8")
        return np.asarray([int(v) for v in text.split()], dtype=np.int64)
    except (UnicodeDecodeError, ValueError, OverflowError):
        raise UsageError(
            f"{path} must hold one non-negative integer image row per caption",
            hint="write one row number per line",
        ) from None


def _check_arrays(
    x: np.ndarray | None, y: np.ndarray | None, geometry: str, curvature: float
) -> None:
    """What a store must hold: (N, d) finite, non-zero rows of one dimension per side."""
    if not math.isfinite(curvature) or (geometry == S.GEOMETRY_LORENTZ and curvature <= 0):
        raise UsageError(
            f"--curvature {curvature} is not a positive finite number",
            hint="pass C > 0 for a space of curvature -C",
        )
    for arr, side in ((x, "image"), (y, "text")):
        if arr is not None and (arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0):
            raise UsageError(f"{side} embeddings have shape {arr.shape}, expected (N, d)")
        with np.errstate(over="ignore", invalid="ignore"):
            finite = arr is None or bool(np.isfinite(arr.astype(np.float32)).all())
        zero = arr is not None and int((~np.any(arr != 0, axis=1)).sum())
        if zero:
            raise UsageError(
                f"{zero} {side} embedding rows are all zeros (no model gives those)",
                hint="drop those rows, or mark the images as skipped by leaving them out",
            )
        if not finite:
            raise UsageError(
                f"{side} embeddings contain NaN or inf (or values beyond float32)",
                hint="drop or fix those rows",
            )
    if x is not None and y is not None and x.shape[1] != y.shape[1]:
        raise UsageError(
            f"image dim {x.shape[1]} differs from text dim {y.shape[1]}",
            hint="import the two sides as separate stores (--image A or --text B)",
        )


def _caption_rows(path: Path | None, n: int, m: int, both: bool) -> np.ndarray | None:
    """The image row of each caption from `path`; None when not given (then both sides,
    if present, must have as many rows)."""
    if path is not None:
        rows = _row_numbers(path)
        if rows.shape != (m,):
            raise UsageError(f"{path} has {rows.size} rows for {m} captions")
        return rows
    if both and m != n:
        raise UsageError(
            f"{n} image rows but {m} text rows",
            hint="pass --caption-image-row FILE (one image row per caption)",
        )
    return None


def _category_arrays(categories: list[str] | None, n: int) -> dict:
    """The store's category names, primary category and one-hot labels ({} when not given)."""
    if categories is None:
        return {}
    names = sorted({c for c in categories if c})
    index = {c: i for i, c in enumerate(names)}
    primary = np.asarray([index.get(c, -1) for c in categories], dtype=np.int32)
    labels = np.zeros((n, len(names)), dtype=np.uint8)
    labels[primary >= 0, primary[primary >= 0]] = 1
    return dict(category_names=names, primary=primary, labels=labels)


def import_embeddings(
    files: Sequence[Path],
    out: Path,
    *,
    image: Path | None = None,
    text: Path | None = None,
    name: str | None = None,
    geometry: str = S.GEOMETRY_EUCLIDEAN,
    curvature: float = 1.0,
    ids_file: Path | None = None,
    captions_file: Path | None = None,
    categories_file: Path | None = None,
    caption_image_row_file: Path | None = None,
    overwrite: bool = False,
) -> Path:
    x, y = read_pairs(files, image, text)
    if geometry not in (S.GEOMETRY_EUCLIDEAN, S.GEOMETRY_LORENTZ):
        raise UsageError(f"unknown geometry {geometry!r}", hint="use euclidean or lorentz")
    _check_arrays(x, y, geometry, curvature)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="give the path of the .h5 file to write")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists", hint="pass --overwrite to replace it")
    n = x.shape[0] if x is not None else y.shape[0]
    m = y.shape[0] if y is not None else 0
    rows = _caption_rows(caption_image_row_file, n, m, both=x is not None and y is not None)
    ids = _lines(ids_file, n, "images")
    captions = _lines(captions_file, m, "captions")
    category_kwargs = _category_arrays(_lines(categories_file, n, "images"), n)
    label = name or (files[0].stem if files else (image or text).stem)
    return store_from_arrays(
        out,
        image_embeddings=None if x is None else x.astype(np.float32),
        text_embeddings=None if y is None else y.astype(np.float32),
        image_ids=ids,
        captions=captions,
        caption_image_row=rows if rows is not None else (np.arange(m) if x is not None else None),
        provenance={
            "model": f"imported:{label}",
            "family": "imported",
            "weights": ", ".join(str(p) for p in [*files, image, text] if p is not None),
            "embedding_image": "imported" if x is not None else "",
            "embedding_text": "imported" if y is not None else "",
            "dataset": label,
            "split": "all",
            "geometry": geometry,
            "curvature": float(curvature) if geometry == S.GEOMETRY_LORENTZ else 0.0,
        },
        dtype="float32",
        overwrite=overwrite,
        **category_kwargs,
    )
