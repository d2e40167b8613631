"""Store file names and the default store directory (docs/design.md §5)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from mgap.core.errors import StoreError

DEFAULT_STORE_DIR = "mgap-stores"


def slug(text: str) -> str:
    """`open_clip:ViT-B-32@openai` -> `open_clip-ViT-B-32-openai`; safe in file names."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip())
    return re.sub(r"-{2,}", "-", text).strip("-.") or "unnamed"


def store_filename(dataset: str, split: str, model: str) -> str:
    return f"{slug(dataset)}-{slug(split)}__{slug(model)}.h5"


def default_store_dir() -> Path:
    return Path(os.environ.get("MGAP_STORE_DIR") or DEFAULT_STORE_DIR)


def make_folder(folder: str | os.PathLike, what: str = "the store folder") -> Path:
    """`folder` created with its parents; a StoreError naming the problem if it cannot be
    (a file in its place, a read-only or virtual file system), never an OSError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = (
            "it is a file, not a folder"
            if folder.exists() and not folder.is_dir()
            else exc.strerror or type(exc).__name__
        )
        raise StoreError(
            f"cannot create {what} {folder}: {reason}",
            hint="choose another --store-dir/--out (or $MGAP_STORE_DIR)",
        ) from None
    return folder


def progress_path(store_path: str | os.PathLike) -> Path:
    return sidecar(store_path, ".progress.json")


def cache_path(store_path: str | os.PathLike) -> Path:
    return sidecar(store_path, ".cache.h5")


#: Every file or folder mgap creates beside a store, as the suffix after the store's name
#: (`<store><suffix>`). Each is opened without following links (see `open_sidecar`), and
#: tests/test_reliability_ii.py plants a link at each one; a new sidecar belongs here.
SIDECARS = (
    ".lock",
    ".creating",
    ".undo",
    ".undo.creating",
    ".skipped.jsonl",
    ".progress.json",
    ".cache.h5",
    ".cache.h5.lock",
    ".ranks",
    ".log",
    # a TUI analysis job of kind K is `<store>.K`: its progress, log, output and work files
    *(
        f".{kind}{part}"
        for kind in ("gap", "retrieval")
        for part in (".progress.json", ".log", ".json", ".work.json")
    ),
)


def sidecar(store_path: str | os.PathLike, suffix: str) -> Path:
    """`<store><suffix>` for a suffix of SIDECARS."""
    if suffix not in SIDECARS:
        raise ValueError(f"{suffix!r} is not a listed sidecar (store.naming.SIDECARS)")
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + suffix)


def link_error(path: str | os.PathLike, what: str = "a symbolic link") -> StoreError:
    return StoreError(
        f"{path} is {what} where mgap keeps a file of its own; it is never written through",
        hint="remove it (and check who put it there)",
    )


def refuse_link(path: str | os.PathLike) -> None:
    """StoreError when `path` is a symbolic link, or a file with another hard link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise link_error(path)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise link_error(path, f"a file with {st.st_nlink} hard links")


def open_sidecar(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """`os.open` that never follows a link: a link where a sidecar should be is refused in
    one line (a shared store directory lets others plant one, docs/guarantees.md)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_error(path) from None
        raise
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        os.close(fd)
        raise link_error(path, f"a file with {st.st_nlink} hard links")
    return fd


def fresh_sidecar(path: str | os.PathLike, mode: int = 0o644) -> int:
    """A new, empty file at `path` opened for writing (O_EXCL): a stale file a kill left
    is removed first (the caller holds the store's lock), a link is refused."""
    refuse_link(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return open_sidecar(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` by `data` through a temporary file of an unpredictable name in the
    same folder (`tempfile`): a reader never sees half a file, and no link is followed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide it from the other users of a folder
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
