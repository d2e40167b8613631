"""Walk a tar shard's member headers to its real end, reporting what cannot be read.

Python's `tarfile` takes the first bad header after offset 0 (one flipped bit, a
zero-filled stretch) as the end of the archive, so the samples after it vanish without a
word. Here every header's checksum is checked by `tarfile` itself, one header at a time,
and a header that fails starts an unreadable region that runs to the next valid header.
Zero blocks are the end of the archive only when nothing but the standard padding follows
them (two blocks, then up to the 10240-byte record); a member whose data runs past the end
of the file, or a file that ends without the end-of-archive blocks, is damage too. Each
region comes out as a `Damage` (its offsets and what was found), never silently.

A zero-filled tail that stays inside the last record looks exactly like padding, so the
samples it erased are undetectable from the file alone.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, BinaryIO

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_BAD_HEADER = (
    tarfile.InvalidHeaderError,
    tarfile.TruncatedHeaderError,
    tarfile.EmptyHeaderError,
    tarfile.SubsequentHeaderError,
    UnicodeError,
    ValueError,
)


@dataclass(frozen=True)
class Damage:
    """Bytes [offset, end) of a shard that hold no readable member."""

    offset: int
    end: int
    what: str

    def reason(self, shard: str) -> str:
        span = f"bytes {self.offset}-{self.end}" if self.end > self.offset else f"at {self.offset}"
        return f"{shard}: unreadable region ({self.what}, {span}); its samples are lost"


def _valid_header(block: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except (tarfile.HeaderError, UnicodeError, ValueError):
        return False
    return True


def _next_header(fh: BinaryIO, start: int, size: int) -> int:
    """The offset of the first block at or after `start` that is a valid header, or `size`."""
    at = start
    while at < size:
        fh.seek(at)
        if _valid_header(fh.read(BLOCK)):
            return at
        at += BLOCK
    return size


def _first_nonzero(fh: BinaryIO, start: int, size: int) -> int:
    """The offset of the first block at or after `start` holding a non-zero byte, or `size`."""
    at = start
    fh.seek(at)
    while at < size:
        chunk = fh.read(64 * BLOCK)
        if not chunk:
            break
        rest = chunk.lstrip(b"\0")
        if rest:
            return at + (len(chunk) - len(rest)) // BLOCK * BLOCK
        at += len(chunk)
    return size


def _padding_ok(at: int, size: int) -> bool:
    """Whether zero blocks from `at` to `size` are an end-of-archive marker and padding."""
    marker = at + 2 * BLOCK
    return size in (at + BLOCK, marker, -(-marker // RECORD) * RECORD)


def _zeros(fh: BinaryIO, at: int, size: int) -> tuple[Damage | None, int]:
    """A zero block at `at`: (damage or None, where to go on; `size` ends the walk)."""
    resume = _first_nonzero(fh, at, size)
    if resume >= size:
        ok = _padding_ok(at, size)
        return (None if ok else Damage(at, size, "zero-filled to the end of the file")), size
    end = _next_header(fh, resume, size)
    return Damage(at, end, "zero-filled blocks before more members"), end


def walk_members(fh: BinaryIO, size: int, digest: Any = None) -> Iterator[tarfile.TarInfo | Damage]:
    """Every member of the tar open as `fh` (`size` bytes) and every unreadable region, in
    file order. `digest.update` gets each member's raw header blocks (a replaced shard
    changes them: its members' times and sizes)."""
    state = SimpleNamespace(
        fileobj=fh, encoding=tarfile.ENCODING, errors="surrogateescape", pax_headers={}, offset=0
    )
    at = 0
    while at < size:
        fh.seek(at)
        try:
            info = tarfile.TarInfo.fromtarfile(state)
        except tarfile.EOFHeaderError:
            damage, at = _zeros(fh, at, size)
            if damage:
                yield damage
            if at >= size:
                return
            continue
        except _BAD_HEADER:
            end = _next_header(fh, at + BLOCK, size)
            yield Damage(at, end, "a damaged member header")
            at = end
            continue
        has_data = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
        if info.offset_data + (info.size if has_data else 0) > size:
            yield Damage(info.offset, size, f"member {info.name!r} cut by the end of the file")
            return
        if digest is not None:
            fh.seek(at)
            digest.update(fh.read(info.offset_data - at))
        yield info
        at = max(state.offset, at + BLOCK)
    yield Damage(size, size, "the file ends without the end-of-archive blocks (cut short?)")
