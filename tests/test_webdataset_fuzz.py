"""Damaged and reordered WebDataset shards never lose samples silently (issue 26 items 5, 6).

Each case writes a shard of samples with random image bytes and captions, then damages
it: a flipped bit in a member header, a flipped bit anywhere, a cut at a random byte or
at a member boundary, a zero-filled stretch or tail, shuffled member order, duplicate
keys. The index must then either refuse in one line (a DatasetError), or account for
every sample: read back with its own bytes, or an error for its row, or a recorded
unreadable region in the shard. Anything else is a silent loss, a catch-all error, or a
hang (a case over its time limit). The default run takes CASES cases; `-m slow` SLOW_CASES.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mgap.core.errors import MgapError
from mgap.engine.datasets import webdataset
from mgap.engine.datasets.tarwalk import BLOCK, RECORD
from mgap.engine.extract.prepare import input_changes

CASES = 36
SLOW_CASES = 1200
CASE_SECONDS = 10.0


def _member(tar: tarfile.TarFile, name: str, data: bytes, mtime: int = 1_700_000_000) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), mtime
    tar.addfile(info, io.BytesIO(data))


def _shard(path: Path, rng, n: int, *, order: str = "plain", dup: bool = False) -> dict:
    """Write a shard of `n` samples; {key: image bytes}."""
    images = {f"s{i:04d}": rng.bytes(int(rng.integers(200, 3000))) for i in range(n)}
    members = []
    for key, data in images.items():
        members += [(f"{key}.jpg", data), (f"{key}.txt", f"caption of {key}".encode())]
    if order == "text-first":
        members = [m for pair in zip(members[1::2], members[0::2], strict=True) for m in pair]
    elif order == "shuffled":
        members = [members[i] for i in rng.permutation(len(members))]
    if dup:
        key = next(iter(images))
        members.append((f"{key}.jpg", rng.bytes(100)))  # a second image for one key
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            _member(tar, name, data)
    return images


def _headers(path: Path) -> list[int]:
    with tarfile.open(path) as tar:
        return [m.offset for m in tar]


def _flip(path: Path, at: int, rng) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(raw))


def _zero(path: Path, lo: int, hi: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[lo:hi] = bytes(hi - lo)
    path.write_bytes(bytes(raw))


def _mutate(path: Path, rng) -> str:
    size, starts = path.stat().st_size, _headers(path)
    kind = str(
        rng.choice(
            ["header-bit", "any-bit", "cut", "cut-at-member", "zero-run", "zero-tail", "none"]
        )
    )
    if kind == "header-bit":
        _flip(path, int(rng.choice(starts)) + int(rng.integers(0, BLOCK)), rng)
    elif kind == "any-bit":
        _flip(path, int(rng.integers(0, size)), rng)
    elif kind in ("cut", "cut-at-member"):
        at = int(rng.choice(starts[1:])) if kind == "cut-at-member" else int(rng.integers(1, size))
        os.truncate(path, at)
    elif kind == "zero-run":  # some members zeroed, readable members after them
        lo = int(rng.choice(starts[1:-1])) if len(starts) > 2 else starts[-1]
        hi = min(starts[-1], lo + int(rng.integers(1, 8)) * BLOCK)
        _zero(path, lo, hi)
    elif kind == "zero-tail":  # longer than a record: zeros inside one look like padding
        far = [at for at in starts[1:] if size - at > RECORD + 2 * BLOCK]
        if far:
            _zero(path, int(rng.choice(far)), size)
    return kind


def _account(manifest, images: dict) -> str:
    """'clean' when every sample is read back, errs on its row, or its shard records damage;
    'loss' for a sample gone without a word."""
    rows = {r.id: i for i, r in enumerate(manifest.records)}
    got = dict(zip(rows, manifest.images_bytes(list(rows.values())), strict=True))
    for data in got.values():
        if isinstance(data, Exception) and not isinstance(data, MgapError):
            return f"catch-all {type(data).__name__}: {data}"
    damaged = bool(manifest.damaged)
    for key, data in images.items():
        value = got.get(key)
        if value is None and not damaged:
            return f"loss of {key}"
        if isinstance(value, bytes) and len(value) != len(data) and not damaged:
            return f"wrong bytes for {key}"
    return "damaged" if damaged else "clean"


def _case(work: Path, rng) -> str:
    work.mkdir(parents=True)
    order = str(rng.choice(["plain", "text-first", "shuffled"]))
    images = _shard(
        work / "a.tar", rng, int(rng.integers(3, 24)), order=order, dup=rng.random() < 0.2
    )
    pattern = str(work / "a.tar")
    if rng.random() < 0.1:  # one key in two shards: refused in one line
        _shard(work / "b.tar", rng, 2)
        (work / "list.txt").write_text("a.tar\nb.tar\n")
        pattern = str(work / "list.txt")
    kind = _mutate(work / "a.tar", rng)
    started = time.monotonic()
    try:
        manifest = webdataset.load(Path(pattern), None)
        outcome = _account(manifest, images)
    except MgapError as exc:
        outcome = "refused" if "\n" not in exc.one_line() else "multi-line error"
    except Exception as exc:  # noqa: BLE001 - the fuzz counts what nothing should raise
        outcome = f"catch-all {type(exc).__name__}: {exc}"
    if time.monotonic() - started > CASE_SECONDS:
        outcome = "hang"
    return f"{kind}:{outcome}"


def _run(tmp_path: Path, cases: int, seed: int) -> Counter:
    rng = np.random.default_rng(seed)
    return Counter(_case(tmp_path / f"c{i}", rng) for i in range(cases))


def _check(counts: Counter) -> None:
    bad = {
        k: v for k, v in counts.items() if k.split(":", 1)[1] not in ("clean", "damaged", "refused")
    }
    assert not bad, f"silent losses, catch-all errors or hangs: {bad} of {dict(counts)}"


def test_fuzz_shards_never_lose_samples_silently(tmp_path):
    counts = _run(tmp_path, CASES, 26)
    _check(counts)
    assert any(k.endswith(":damaged") for k in counts), counts


@pytest.mark.slow
def test_fuzz_thousand_shards(tmp_path):
    counts = _run(tmp_path, SLOW_CASES, 2026)
    _check(counts)
    assert sum(counts.values()) >= 1000


# -- the cases, one by one -------------------------------------------------------
def _load(path: Path):
    return webdataset.load(path, None)


def test_a_flipped_bit_in_one_header_is_recorded_with_shard_and_offset(tmp_path):
    shard = tmp_path / "a.tar"
    images = _shard(shard, np.random.default_rng(1), 24)
    victim = _headers(shard)[10]  # the jpg header of sample 5
    _flip(shard, victim + 3, np.random.default_rng(2))
    m = _load(shard)
    read = {r.id for r in m.records if r.id in m.locations}
    assert read == set(images) - {"s0005"}
    [(key, reason)] = m.damaged.items()
    assert key == f"a.tar@{victim}" and str(shard) in reason and str(victim) in reason
    [error] = m.images_bytes([[r.id for r in m.records].index(key)])
    assert isinstance(error, MgapError) and "unreadable region" in str(error)


def test_a_shard_cut_at_a_member_boundary_is_recorded(tmp_path):
    shard = tmp_path / "a.tar"
    _shard(shard, np.random.default_rng(1), 24)
    cut = _headers(shard)[30]
    os.truncate(shard, cut)
    m = _load(shard)
    assert len(m.locations) == 15
    assert list(m.damaged) == [f"a.tar@{cut}"]
    assert "ends without the end-of-archive" in m.damaged[f"a.tar@{cut}"]


def test_a_zero_filled_tail_is_recorded(tmp_path):
    shard = tmp_path / "a.tar"
    _shard(shard, np.random.default_rng(1), 24)
    lo, size = _headers(shard)[38], shard.stat().st_size
    raw = bytearray(shard.read_bytes())
    raw[lo:] = bytes(size - lo)
    shard.write_bytes(bytes(raw))
    m = _load(shard)
    assert len(m.locations) == 19
    assert m.damaged == {
        f"a.tar@{lo}": f"{shard}: unreadable region (zero-filled to the end of the file, "
        f"bytes {lo}-{size}); its samples are lost"
    }


def test_zeros_between_members_do_not_end_the_shard(tmp_path):
    shard = tmp_path / "a.tar"
    images = _shard(shard, np.random.default_rng(1), 12)
    starts = _headers(shard)
    raw = bytearray(shard.read_bytes())
    raw[starts[4] : starts[6]] = bytes(starts[6] - starts[4])  # sample 2 zeroed
    shard.write_bytes(bytes(raw))
    m = _load(shard)
    assert set(m.locations) == set(images) - {"s0002"}
    assert list(m.damaged) == [f"a.tar@{starts[4]}"]


def test_a_clean_shard_records_no_damage(tmp_path):
    shard = tmp_path / "a.tar"
    images = _shard(shard, np.random.default_rng(1), 30, order="shuffled")
    m = _load(shard)
    assert not m.damaged and set(m.locations) == set(images)
    rows = [r.id for r in m.records]
    got = dict(zip(rows, m.images_bytes(list(range(len(rows)))), strict=True))
    assert all(got[k] == v for k, v in images.items())


# -- item 6: a shard replaced between a kill and the resume -------------------------------
def _rewrite(shard: Path, images: dict, seed: int, mtime: int) -> None:
    """The same member names and sizes, new image bytes."""
    rng = np.random.default_rng(seed)
    with tarfile.open(shard, "w") as tar:
        for key, data in images.items():
            _member(tar, f"{key}.jpg", rng.bytes(len(data)), mtime)
            _member(tar, f"{key}.txt", f"caption of {key}".encode(), mtime)


def test_a_replaced_shard_is_refused_on_resume(tmp_path):
    shard = tmp_path / "a.tar"
    images = _shard(shard, np.random.default_rng(1), 8)
    before = _load(shard).annotation_sha256
    assert _load(shard).annotation_sha256 == before  # the same shard: a resume goes on
    stat = shard.stat()
    _rewrite(shard, images, 9, 1_700_000_000)  # even the member headers are the same
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after_mtime = _load(shard).annotation_sha256
    _rewrite(shard, images, 9, 1_700_000_001)  # member times differ; the old file mtime
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after_headers = _load(shard).annotation_sha256
    assert before not in (after_mtime, after_headers)
    stored = SimpleNamespace(attrs={"annotation_sha256": before})
    [change] = input_changes(stored, {"annotation_sha256": after_headers})
    assert change.startswith("annotation_sha256 changed")
