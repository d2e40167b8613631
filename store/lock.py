"""One writer per store: an exclusive advisory lock on `<store>.lock`.

`flock` locks belong to the open file, so the kernel releases them when the process dies,
even on SIGKILL. The lock file holds the holder's pid for the message a second writer
prints; it is opened without following links (`store.naming.open_sidecar`). It is
removed on release; an acquirer re-checks after locking that the path still
names the file it locked, so a release racing an acquire cannot let two writers in.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mgap.core.errors import StoreError
from mgap.store.naming import make_folder, open_sidecar, sidecar


class StoreLockedError(StoreError):
    """Another process is writing this store."""


def lock_path(store_path: str | os.PathLike) -> Path:
    return sidecar(store_path, ".lock")


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "another process"
    return f"pid {text}" if text.isdigit() else "another process"


class StoreLock:
    """Context manager: `with StoreLock(path, wait=False): ...` writes the store exclusively."""

    def __init__(self, store_path: str | os.PathLike, *, wait: bool = False) -> None:
        self.store_path = Path(store_path)
        self.path = lock_path(store_path)
        self.wait = wait
        self.fd: int | None = None

    def acquire(self) -> StoreLock:
        make_folder(self.path.parent)
        while True:
            try:
                fd = open_sidecar(self.path, os.O_RDWR | os.O_CREAT)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the lock file {self.path}: {exc.strerror}",
                    hint="choose a writable --store-dir/--out",
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                raise StoreLockedError(
                    f"{self.store_path} is being written by {_holder(self.path)}",
                    hint="wait for it to finish, or pass --wait to queue behind it",
                ) from None
            if self._still_ours(fd):
                break
            os.close(fd)  # the holder removed the file while we waited: lock the new one
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass  # a full disk: the lock holds, only the pid in the message is missing
        return self

    def _still_ours(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return os.fstat(fd).st_ino == st.st_ino

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
