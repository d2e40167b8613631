"""Read a store's HDF5 metadata in a child process before this process opens it.

Damaged bytes can make HDF5's C library loop forever (a corrupt global heap turns the
read of a string attribute into an endless loop) or crash the process, and Python can
interrupt neither. So before mgap opens a file it did not just write itself, a child
opens it, visits every group and dataset header, reads every attribute and every string
dataset, and reads no embedding payload. A child still busy after the timeout, or killed
by a signal, makes the file "damaged"; a Python exception in the child does not (this
process meets it again on open and reports it in its own words). Verdicts are memoised
per process by the file's (device, inode, size, mtime), so one command probes a file once,
and `trust` records the files this process has just written.

A single-threaded process forks (cheap: h5py is already loaded, and the child leaves by
`os._exit`). A multi-threaded one (the TUI) runs `python -m mgap.store.probe` instead: a
fork copies only the calling thread, and a lock another thread holds (h5py's) would
never be released in the child. `probe_many` walks many files in one child (`mgap ls`).

A file whose root lacks the datasets every store has (`schema.IMAGE_IDS`,
`schema.TEXT_CAPTIONS`) is no mgap store: the child says so and does not walk it, and
`not_a_store` answers from the memo (`mgap ls` skips such files fast, docs/commands.md).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import h5py

from mgap.core.errors import StoreError
from mgap.store import schema as S

#: seconds a child may spend on one file, plus one second per PER_SECOND_BYTES of it
TIMEOUT_S = 5.0
PER_SECOND_BYTES = 100_000_000
#: seconds a `python -m` child may take to start (imports on a loaded machine)
START_S = 30.0
TIMEOUT_ENV = "MGAP_PROBE_TIMEOUT"
HINT = f"extract or import it again (on a slow disk, {TIMEOUT_ENV}=SECONDS allows more time)"

_Key = tuple[int, int, int, int]
_verdicts: dict[_Key, str | None] = {}
#: files the child found to be HDF5 without a store's datasets
_foreign: set[_Key] = set()


def _key(path: Path) -> _Key | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _base_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else TIMEOUT_S
    except ValueError:
        value = TIMEOUT_S
    return value if 0 < value < float("inf") else TIMEOUT_S


def timeout_for(path: Path) -> float:
    """Seconds the child may spend on `path`: the base (MGAP_PROBE_TIMEOUT) plus its size."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return _base_timeout() + size / PER_SECOND_BYTES


# ---- the child's work ----------------------------------------------------------------
def _touch(call) -> None:
    """One read; a Python-level error is this process's to report on the real open."""
    with contextlib.suppress(Exception):
        call()


def _read_attrs(obj: h5py.HLObject) -> None:
    for key in list(obj.attrs):
        _touch(lambda key=key: obj.attrs[key])


def _read_dataset_metadata(ds: h5py.Dataset) -> None:
    plist = ds.id.get_create_plist()
    if ds.is_virtual or plist.get_external_count() > 0:
        return  # its bytes live elsewhere: the containment check refuses it in-process
    if ds.chunks is not None:
        _touch(ds.id.get_num_chunks)  # walks the chunk index
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind == "O":
        _touch(lambda: ds[...])  # variable-length strings live in the global heap too


def walk(path: str | os.PathLike) -> bool:
    """Open `path` and read all its metadata, following hard links only; False, without
    the walk, when its root lacks a store's datasets (it is no mgap store)."""
    with h5py.File(path, "r", locking=False) as f:
        if S.IMAGE_IDS not in f or S.TEXT_CAPTIONS not in f:
            return False
        _read_attrs(f)
        seen: set[int] = set()
        stack: list[h5py.Group] = [f]
        while stack:
            group = stack.pop()
            for name in list(group):
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    continue
                try:
                    obj = group[name]
                    addr = h5py.h5o.get_info(obj.id).addr
                except Exception:  # noqa: BLE001, S112 - a damaged header: the real open reports it
                    continue
                if addr in seen:
                    continue
                seen.add(addr)
                _read_attrs(obj)
                if isinstance(obj, h5py.Group):
                    stack.append(obj)
                elif isinstance(obj, h5py.Dataset):
                    _touch(lambda obj=obj: _read_dataset_metadata(obj))
    return True


def _serve(paths: Sequence[str], fd: int) -> None:
    """The child's loop: `ready`, then one line per file, in order: `done` when walked
    (or when HDF5 refused it: the real open reports that), `other` when no mgap store."""
    os.write(fd, b"ready\n")
    for path in paths:
        store = True
        with contextlib.suppress(BaseException):
            store = walk(path)
        os.write(fd, b"other\n" if store is False else b"done\n")


# ---- the parent's side ----------------------------------------------------------------
def _can_fork() -> bool:
    """Fork only a single-threaded process: a lock held by another thread (h5py's) would
    never be released in the child."""
    return hasattr(os, "fork") and threading.active_count() == 1


class _Child:
    """A probing child (forked or `python -m`): its pipe, and how to end and reap it."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        if _can_fork():
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never return into the caller
                try:
                    os.close(read)
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, 1)
                    os.dup2(null, 2)
                    faulthandler.disable()  # a crash is the verdict, not a report to print
                    _serve([str(p) for p in paths], write)
                finally:
                    os._exit(0)
            os.close(write)
            self.pid, self.fd = pid, read
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mgap.store.probe", *map(str, paths)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self.fd = self.proc.stdout.fileno()

    def end(self, kill: bool) -> int:
        """Reap the child (killing it first if asked); the signal that ended it, or 0."""
        if self.proc is not None:
            if kill:
                self.proc.kill()
            code = self.proc.wait()
            self.proc.stdout.close()
            return -code if code < 0 else 0
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def _not_started() -> StoreError:
    return StoreError(
        f"the HDF5 metadata probe ({sys.executable} -m mgap.store.probe) did not start",
        hint="check that this Python can import mgap and h5py",
    )


def _run(paths: Sequence[Path]) -> tuple[int, str | None]:
    """Walk `paths` in one child: how many it finished, and what stopped it (or None).
    The files it found to be no mgap store go into the memo `_foreign`."""
    child = _Child(paths)
    done, started, buffer, ended = 0, False, b"", False
    deadline = time.monotonic() + START_S
    try:
        while done < len(paths):
            ready, _, _ = select.select([child.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready and not started:
                raise _not_started()
            if not ready:
                limit = timeout_for(paths[done])
                return done, f"HDF5 did not finish reading its metadata within {limit:.3g} s"
            chunk = os.read(child.fd, 4096)
            if not chunk:
                ended, sig = True, child.end(kill=False)
                if not started:
                    raise _not_started()
                name = signal.Signals(sig).name if sig else "an unexpected exit"
                return done, f"HDF5 crashed reading its metadata ({name})"
            *lines, buffer = (buffer + chunk).split(b"\n")
            started = started or b"ready" in lines
            for line in lines:
                if line == b"other" and (key := _key(paths[done])) is not None:
                    _foreign.add(key)
                done += line in (b"done", b"other")
            if started and lines and done < len(paths):
                deadline = time.monotonic() + timeout_for(paths[done])
        return done, None
    finally:
        if not ended:
            child.end(kill=done < len(paths))


def probe_many(paths: Sequence[str | os.PathLike]) -> dict[Path, str | None]:
    """Each path's problem ("HDF5 did not finish ...", "HDF5 crashed ...") or None.

    Files already judged (same device, inode, size and mtime) are not probed again;
    the rest share children: one runs until it finishes, hangs or dies, and the files
    after the one that stopped it go to a fresh child.
    """
    verdicts: dict[Path, str | None] = {}
    todo: list[tuple[Path, _Key]] = []
    for raw in paths:
        path = Path(raw)
        key = _key(path)
        if key is None or key in _verdicts:
            verdicts[path] = _verdicts.get(key) if key else None
        else:
            todo.append((path, key))
    while todo:
        done, problem = _run([path for path, _ in todo])
        for path, key in todo[:done]:
            verdicts[path] = _verdicts[key] = None
        if problem is None:
            break
        path, key = todo[done]
        verdicts[path] = _verdicts[key] = problem
        todo = todo[done + 1 :]
    return verdicts


def probe(path: str | os.PathLike) -> str | None:
    """The problem that makes `path` unsafe to open in this process, or None."""
    return probe_many([path])[Path(path)]


def not_a_store(path: str | os.PathLike) -> bool:
    """True when a probe of `path` as it is now found HDF5 without a store's datasets."""
    return _key(Path(path)) in _foreign


def trust(path: str | os.PathLike) -> None:
    """Record `path` as it is now as sound: this process has just written it."""
    key = _key(Path(path))
    if key is not None:
        _verdicts[key] = None
        _foreign.discard(key)


if __name__ == "__main__":
    _serve(sys.argv[1:], sys.stdout.fileno())
