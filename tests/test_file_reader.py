"""Image files are read on one reader thread per process, a batch per hand-off: exact
bytes in order, a stalled read times out without stopping the rest of its batch, a FIFO
or a missing file fails alone, forked workers read too."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from mgap.engine.datasets import files
from mgap.engine.datasets.files import read_file_ranges, read_regular_file, read_regular_files


@pytest.mark.parametrize("size", [0, 1, 4096, 300_001])
def test_reads_every_byte(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "image.jpg"
    path.write_bytes(data)
    assert read_regular_file(path) == data


def test_a_file_that_grows_after_the_stat_is_read_to_its_end(tmp_path, monkeypatch):
    path = tmp_path / "growing.bin"
    path.write_bytes(b"a" * 10)
    real_fstat = os.fstat

    def fstat_then_append(fd):  # the file grows between fstat and the read
        info = real_fstat(fd)
        with path.open("ab") as handle:
            handle.write(b"b" * 100_000)
        return info

    monkeypatch.setattr(files.os, "fstat", fstat_then_append)
    assert read_regular_file(path) == b"a" * 10 + b"b" * 100_000


def test_a_stalled_read_times_out_and_the_next_read_works(tmp_path, monkeypatch):
    path = tmp_path / "image.jpg"
    path.write_bytes(b"pixels")
    release = threading.Event()
    real_read_all = files._read_all

    def stalled(fd, size):  # a read stuck on a dead network mount
        release.wait(10)
        return real_read_all(fd, size)

    monkeypatch.setattr(files, "_read_all", stalled)
    stuck = files._Reader.get()
    with pytest.raises(TimeoutError, match=r"reading image.jpg took longer than 0.2 s"):
        read_regular_file(path, timeout_s=0.2)
    monkeypatch.setattr(files, "_read_all", real_read_all)
    assert read_regular_file(path) == b"pixels"  # on a new reader thread
    assert files._Reader.get() is not stuck
    release.set()


def test_a_batch_gives_each_file_its_bytes_or_its_own_error_in_order(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(5)]
    blobs = [os.urandom(1000 * i) for i in range(5)]
    for path, blob in zip(paths, blobs, strict=True):
        path.write_bytes(blob)
    paths[1].unlink()
    paths[1].mkdir()  # a folder where an image should be
    paths[3] = tmp_path / "gone.jpg"
    os.mkfifo(tmp_path / "pipe.jpg")
    paths.append(tmp_path / "pipe.jpg")
    got = list(read_regular_files(paths))
    assert [got[0], got[2], got[4]] == [blobs[0], blobs[2], blobs[4]]
    assert isinstance(got[1], OSError)
    assert isinstance(got[3], FileNotFoundError) and got[3].filename == str(paths[3])
    assert str(got[5]) == "pipe.jpg is a FIFO, not a regular file"


def test_ranges_and_a_file_named_twice_each_read_their_own_bytes(tmp_path):
    """Tar members are byte ranges of one shard, read through duplicates of one descriptor
    (which share its offset): every read is positioned."""
    shard = tmp_path / "shard.tar"
    data = os.urandom(10_000)
    shard.write_bytes(data)
    ranges = [(shard, 512, 1024), (shard, 0, 100), (shard, 9_990, 100), (tmp_path / "no.tar", 0, 1)]
    got = list(read_file_ranges(ranges))
    assert got[:3] == [data[512:1536], data[:100], data[9_990:]]  # the last one ends early
    assert isinstance(got[3], FileNotFoundError)
    assert list(read_regular_files([shard, shard])) == [data, data]


def test_a_stall_inside_a_batch_times_out_that_file_and_the_rest_are_read(tmp_path, monkeypatch):
    paths = [tmp_path / f"{name}.jpg" for name in ("a", "stuck", "c", "d")]
    for path in paths:
        path.write_bytes(path.stem.encode() * 3)
    release = threading.Event()
    real_read_all = files._read_all
    stuck_fd = []

    def stalls_once(fd, size):  # the second file sits on a dead mount
        if os.read(fd, 1) == b"s" and not stuck_fd:
            stuck_fd.append(fd)
            release.wait(10)
        os.lseek(fd, 0, os.SEEK_SET)
        return real_read_all(fd, size)

    monkeypatch.setattr(files, "_read_all", stalls_once)
    stuck = files._Reader.get()
    got = list(read_regular_files(paths, timeout_s=0.3))
    assert got[0] == b"aaa" and got[2:] == [b"ccc", b"ddd"]
    assert isinstance(got[1], TimeoutError)
    assert str(got[1]) == "reading stuck.jpg took longer than 0.3 s"
    assert files._Reader.get() is not stuck  # the stuck reader was abandoned
    release.set()


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "image.jpg"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="image.jpg is a FIFO, not a regular file"):
        read_regular_file(fifo)


def _child_read(path, queue):
    queue.put(read_regular_file(path))


def test_a_forked_worker_reads_on_its_own_thread(tmp_path):
    path = tmp_path / "image.jpg"
    path.write_bytes(b"jpeg bytes")
    assert read_regular_file(path) == b"jpeg bytes"  # the parent's reader exists now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_read, args=(path, queue))
    child.start()
    assert queue.get(timeout=20) == b"jpeg bytes"
    child.join(20)
    assert child.exitcode == 0
