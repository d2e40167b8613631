"""Reading helpers shared by the dataset loaders, so every format fails the same way.

Each helper turns a filesystem or format problem into a one-line `DatasetError` /
`UsageError` that names the file (and line) and the fix; loaders never let a
KeyError or JSONDecodeError reach the user.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mgap.core.errors import DatasetError, UsageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
#: seconds one image file may take to read before it is skipped (a stalled network mount)
READ_TIMEOUT_S = 60.0


def require_regular(path: Path) -> Path:
    """Refuse FIFOs, devices and sockets before opening: reading one can block forever."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise DatasetError(
            f"{path} is not a regular file ({_kind(mode)})", hint="point at a real file"
        )
    return path


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


#: a read for the reader thread: (fd, offset, size); offset None reads the whole file
Job = tuple[int, int | None, int]


class _Reads:
    """One batch of reads handed to the reader thread at once: `results[i]` is set before
    `done[i]`; an abandoned batch (its reader timed out) closes the rest unread."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = list(jobs)
        self.results: list[bytes | OSError | None] = [None] * len(self.jobs)
        self.done = [threading.Event() for _ in self.jobs]
        self.abandoned = False


class _Reader:
    """This process's reader thread: reads run there so a stalled mount costs `timeout_s`,
    not the run, without starting a thread per file (a thread start was ~0.1 ms of CPU, 5%
    of a worker's whole per-image work). A batch of files is one hand-off (a hand-off per
    file cost 0.08 ms of CPU), and the reader runs ahead while the caller decodes. A reader
    stuck past a timeout is abandoned (it is a daemon) and the next read starts a new one;
    a forked worker starts its own."""

    _current: _Reader | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: queue.SimpleQueue[_Reads] = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="mgap-file-reader").start()

    @classmethod
    def get(cls) -> _Reader:
        if cls._current is None or cls._current.pid != os.getpid():
            cls._current = cls()
        return cls._current

    def _loop(self) -> None:
        while True:
            reads = self.jobs.get()
            for i, (fd, offset, size) in enumerate(reads.jobs):
                try:
                    if not reads.abandoned:
                        reads.results[i] = (
                            _read_all(fd, size) if offset is None else _read_range(fd, offset, size)
                        )
                except OSError as exc:
                    reads.results[i] = exc
                finally:
                    os.close(fd)
                    reads.done[i].set()

    def read(self, jobs: Sequence[Job], timeout_s: float) -> Iterator[bytes | OSError]:
        """Each job's bytes in order, as the reader finishes them. The reader gets its own
        duplicate of each fd (closed there, so a timeout never closes a descriptor in use);
        after a timeout the rest go to a new reader."""
        reads = _Reads([(os.dup(fd), offset, size) for fd, offset, size in jobs])
        self.jobs.put(reads)
        return self._results(reads, jobs, timeout_s)

    def _results(
        self, reads: _Reads, jobs: Sequence[Job], timeout_s: float
    ) -> Iterator[bytes | OSError]:
        for i in range(len(jobs)):
            if not reads.done[i].wait(timeout_s):
                reads.abandoned = True
                type(self)._current = None
                yield TimeoutError(f"took longer than {timeout_s:g} s")
                yield from _Reader.get().read(jobs[i + 1 :], timeout_s)
                return
            yield reads.results[i]  # type: ignore[misc]


def _read_all(fd: int, size: int) -> bytes:
    """Read to the end: one pread when the file still has the `size` bytes fstat saw
    (asking one byte more sees the end of file); more only if it changed meanwhile.
    Positioned reads, because duplicates of one descriptor share its offset."""
    first = os.pread(fd, size + 1, 0)
    if len(first) == size:
        return first
    parts, offset = [first], len(first)
    while chunk := os.pread(fd, max(size, 1 << 16), offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _read_range(fd: int, offset: int, size: int) -> bytes:
    """`size` bytes at `offset`; fewer only where the file ends first (the caller names it)."""
    parts, got = [], 0
    while got < size and (chunk := os.pread(fd, size - got, offset + got)):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_regular_file(path: Path, timeout_s: float = READ_TIMEOUT_S) -> bytes:
    """The bytes of a regular file, or OSError/TimeoutError; never blocks on a FIFO."""
    [result] = read_regular_files([path], timeout_s)
    if isinstance(result, OSError):
        raise result
    return result


def read_regular_files(
    paths: Sequence[Path], timeout_s: float = READ_TIMEOUT_S
) -> Iterator[bytes | OSError]:
    """Each file's bytes, or the OSError/TimeoutError that names it, in order.

    Each file is opened non-blocking and checked with fstat (no race with a swap after a
    stat); the reads run on this process's reader thread (`_Reader`), ahead of the caller,
    so a stalled mount costs `timeout_s` per file, not the run.
    """
    return _read_ahead([(path, None, 0) for path in paths], timeout_s)


def read_file_ranges(
    ranges: Sequence[tuple[Path, int, int]], timeout_s: float = READ_TIMEOUT_S
) -> Iterator[bytes | OSError]:
    """The bytes of each (file, offset, size), as `read_regular_files` reads whole files
    (tar members: each file is opened once per call). Short only where a file ends."""
    return _read_ahead(ranges, timeout_s)


def _read_ahead(
    items: Sequence[tuple[Path, int | None, int]], timeout_s: float
) -> Iterator[bytes | OSError]:
    opened: dict[Path, tuple[int, int] | OSError] = {}
    jobs: list[Job] = []
    errors: dict[int, OSError] = {}
    try:
        for i, (path, offset, size) in enumerate(items):
            if path not in opened:
                try:
                    opened[path] = _open_regular(path)
                except OSError as exc:
                    opened[path] = exc
            got = opened[path]
            if isinstance(got, OSError):
                errors[i] = got
                continue
            fd, file_size = got
            jobs.append((fd, offset, file_size if offset is None else size))
        reads = _Reader.get().read(jobs, timeout_s)
        for i, (path, _, _) in enumerate(items):
            result = errors[i] if i in errors else next(reads)
            if isinstance(result, TimeoutError):
                result = TimeoutError(f"reading {path.name} {result}")
            yield result
    finally:
        for got in opened.values():
            if not isinstance(got, OSError):
                os.close(got[0])


def _open_regular(path: Path) -> tuple[int, int]:
    """(fd, size) of a regular file, opened so that a FIFO cannot block the open."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path.name} is {_kind(info.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd, info.st_size


def caption_text(value: object, path: Path, where: object) -> str:
    """A caption from an annotation file: text, never None or a number made into text."""
    if not isinstance(value, str):
        raise DatasetError(
            f"{path}: caption {where} is {'null' if value is None else type(value).__name__}, "
            "not text",
            hint="fix or remove that annotation",
        )
    return value.strip()


def require_root(data_root: Path | None, kind: str) -> Path:
    """The absolute data root; a missing one is the most common first mistake."""
    if data_root is None:
        raise UsageError(
            f"--dataset {kind} needs --data-root",
            hint="pass the folder (or file) that holds the dataset",
        )
    if not data_root.exists():
        raise DatasetError(
            f"data root {data_root} does not exist",
            hint="check the --data-root path",
        )
    return data_root.resolve()


def require_dir(root: Path, kind: str) -> Path:
    if not root.is_dir():
        raise DatasetError(
            f"data root {root} is a file, but --dataset {kind} expects a folder",
            hint="pass the folder that holds the annotation file and the images",
        )
    return root


def reject_options(kind: str, options: Mapping[str, object], allowed: Sequence[str] = ()) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"--dataset {kind} takes no option {', '.join(unknown)}")


def load_json(path: Path, prepare: Callable[[bytes], bytes] | None = None) -> tuple[object, str]:
    """(parsed JSON, sha256 hex of the file): one read serves both, which matters at 450 MB.

    `prepare` may cut parts the caller never reads before parsing (COCO's polygons);
    the hash is of the file as it is, and a syntax error is located in the file as it is.
    """
    try:
        raw = require_regular(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        try:
            return json.loads(prepare(raw) if prepare else raw), digest
        except json.JSONDecodeError:
            if prepare is None:
                raise
            return json.loads(raw), digest
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"malformed JSON in {path} at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            hint="re-download or repair the file",
        ) from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text", hint="re-download the file") from None
    except RecursionError:
        raise DatasetError(
            f"{path} nests JSON too deeply to read", hint="re-download or repair the file"
        ) from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_hashes(hashes: Mapping[str, str]) -> str:
    """`name:sha256` pairs: each can be checked with `sha256sum` against the file named."""
    return " ".join(f"{name}:{digest}" for name, digest in hashes.items())


@contextmanager
def annotation_structure(path: Path, what: str) -> Iterator[None]:
    """Report a missing key or wrong type inside an annotation file as one line naming it."""
    try:
        yield
    except KeyError as exc:
        raise DatasetError(f"{path} is not {what}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise DatasetError(f"{path} is not {what}: {exc}") from None


def pick_split(
    available: Sequence[str],
    split: str | None,
    *,
    kind: str,
    root: Path,
    default: str | None = None,
) -> str:
    """The requested split, the only one present, or `default`; otherwise list the choices."""
    listed = ", ".join(sorted(available)) or "none"
    if split is not None:
        if split not in available:
            raise UsageError(
                f"unknown split {split!r} for --dataset {kind} at {root}",
                hint=f"available splits: {listed}",
            )
        return split
    if len(available) == 1:
        return available[0]
    if default is not None and default in available:
        return default
    raise UsageError(
        f"--dataset {kind} at {root} has several splits",
        hint=f"pick one with --split ({listed})",
    )


def first_existing_dir(root: Path, candidates: Sequence[str]) -> str:
    """The first candidate folder under root that exists, else the first (images may be absent
    for a text-only model, and the extractor records missing files as skipped)."""
    for candidate in candidates:
        if (root / candidate).is_dir():
            return candidate
    return candidates[0]


def join_relative(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder not in ("", ".") else name


def require_records(records: Sequence[object], source: Path, kind: str) -> None:
    if not records:
        raise DatasetError(
            f"--dataset {kind}: no images found in {source}",
            hint="check --data-root and --split",
        )
