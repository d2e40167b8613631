"""Disk space: stop with one line naming the disk, before HDF5 metadata meets a full disk.

Extraction writes embedding rows into space allocated when the store was created, so
block writes never grow the file. Everything that does grow it (creating the store,
prompts, the final skip list) first checks the free space and the process's file-size
limit (RLIMIT_FSIZE); a write that still fails with ENOSPC/EFBIG/EDQUOT becomes a
`DiskFullError`, and the caller then writes nothing more into the store.
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from mgap.core.errors import StoreError

_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_FULL_TEXT = ("no space left", "file too large", "disk quota", "errno = 28", "errno = 27")
#: room for HDF5 metadata on top of the payload of a growing write
MARGIN = 256 << 10


class DiskFullError(StoreError):
    """The disk (or the file-size limit) is full; the store is left resumable."""


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system that holds `path` (or would hold it)."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return p


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EFBIG/EDQUOT, also when h5py only names them in the message (an
    OSError, or a RuntimeError when the flush on close fails)."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    text = str(exc).lower()
    return isinstance(exc, OSError | RuntimeError) and any(t in text for t in _FULL_TEXT)


def disk_full(path: str | os.PathLike, detail: str = "") -> DiskFullError:
    mount = mount_point(path)
    try:
        st = os.statvfs(mount)
        free = f"{st.f_bavail * st.f_frsize / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    limit_text = "" if limit == resource.RLIM_INFINITY else f", file size limit {limit} bytes"
    return DiskFullError(
        f"disk full: {mount} ({free}{limit_text}) cannot take {detail or 'more'} for {path}",
        hint="free space or raise the limit, then run the same command again to resume",
    )


def ensure_space(path: str | os.PathLike, grow_bytes: int) -> None:
    """Raise DiskFullError unless `path` can grow by `grow_bytes` plus a metadata margin."""
    need = int(grow_bytes) + MARGIN
    path = Path(path)
    st = os.statvfs(mount_point(path))
    if st.f_bavail * st.f_frsize < need:
        raise disk_full(path, f"{need / 1e6:.1f} MB")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        size = path.stat().st_size if path.is_file() else 0
        if size + need > limit:
            raise disk_full(path, f"{need / 1e6:.1f} MB")
