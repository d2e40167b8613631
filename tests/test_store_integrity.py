"""Stores that verify what they hold (issue 17 items 3, 4, 5, 7): block checksums, every
structural invariant, self-containment, one writer per store, `ls` on a broken store.

Each damaged store is crafted with h5py from a good one; `verify` must list a problem and
exit 1, and readers must fail with one line, never a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import zlib

import h5py
import numpy as np
import pytest

from mgap.core.errors import StoreError
from mgap.store import open_store
from mgap.store.lock import StoreLock, StoreLockedError
from mgap.store.verify import verify_store
from mgap.store.writer import StoreWriter


def _good(make_store, rng, name="s.h5", n=10, d=6, **kwargs):
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = rng.normal(size=(n, d)).astype(np.float32)
    return make_store(name, X=X, Y=Y, **kwargs), X, Y


def _one_line_failure(result) -> None:
    assert result.returncode in (1, 2), result
    assert "Traceback" not in result.stderr and "set MGAP_DEBUG" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mgap: error: "), result.stderr


def test_a_good_store_verifies_and_its_checksums_are_the_crc32_of_each_block(make_store, rng):
    path, X, Y = _good(make_store, rng, n=10)
    assert verify_store(path) == []
    with h5py.File(path, "r") as f:
        block = int(f.attrs["block_rows"])
        sums = f["checksums/images.embeddings"][...]
        rows = X.astype(np.float32)
        valid = np.ones(10, dtype=np.uint8)
        # the published definition: CRC32 of the block's raw rows, then of its valid flags
        expected = [
            zlib.crc32(valid[k : k + block].tobytes(), zlib.crc32(rows[k : k + block].tobytes()))
            for k in range(0, 10, block)
        ]
        assert sums.tolist() == expected
        assert f["checksums/texts.embeddings"][0] == zlib.crc32(Y.tobytes())


def test_one_flipped_bit_in_the_payload_fails_verify_and_a_checked_read(make_store, rng, cli):
    path, X, _ = _good(make_store, rng, n=10)
    with h5py.File(path, "r+") as f:
        ds = f["images/embeddings"]
        offset = ds.id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[offset + 4 * 7 + 3] ^= 0x40  # one bit of row 1, value 1: a sign/exponent bit
    path.write_bytes(bytes(raw))
    problems = verify_store(path)
    assert problems == ["/images/embeddings: 1 blocks fail their checksum (rows 0-9)"]
    result = cli("verify", str(path))
    assert result.returncode == 1 and "fail their checksum" in result.stderr
    assert "Traceback" not in result.stderr
    # an unchecked read returns the changed value; a checked one refuses in one line
    assert open_store(path).image_embeddings()[1, 1] != X[1, 1]
    with pytest.raises(StoreError, match="fails its checksum"):
        open_store(path, check=True).image_embeddings()
    _one_line_failure(cli("export", str(path), "--out", str(path.parent / "x"), "--check"))


def _replace(f: h5py.File, name: str, data) -> None:
    attrs = dict(f[name].attrs)
    del f[name]
    f[name] = data
    for k, v in attrs.items():
        f[name].attrs[k] = v


DAMAGE = {
    "3-D image embeddings": lambda f: _replace(
        f, "images/embeddings", np.zeros((10, 3, 2), np.float32)
    ),
    "image dim differs from text dim": lambda f: _replace(
        f, "texts/embeddings", np.ones((10, 5), np.float32)
    ),
    "block_rows is text": lambda f: f.attrs.__setitem__("block_rows", "abc"),
    "1-D embeddings": lambda f: _replace(f, "images/embeddings", np.ones(10, np.float32)),
    "1-D labels": lambda f: _replace(f, "images/labels", np.zeros(10, np.uint8)),
    "status not UTF-8": lambda f: f.attrs.__setitem__("status", np.bytes_(b"\xff\xfe")),
    "unknown status": lambda f: f.attrs.__setitem__("status", "done"),
    "caption row out of range": lambda f: f["texts/image_row"].__setitem__(0, 99),
    "primary out of range": lambda f: f["images/primary"].__setitem__(0, 5),
    "ids not unique": lambda f: _replace(f, "images/ids", np.array(["a"] * 10, dtype=object)),
    "ids as integers": lambda f: _replace(f, "images/ids", np.arange(10)),
    "progress beyond the rows": lambda f: f["progress"].__setitem__(0, 11),
    "missing captions row index": lambda f: f.__delitem__("texts/image_row"),
    "prompt dim mismatch": lambda f: (
        f.create_dataset("prompts/category/embeddings", data=np.ones((2, 4), np.float32)) and None
    ),
    "NaN row": lambda f: f["images/embeddings"].__setitem__(2, np.nan),
    "valid flag 7": lambda f: f["images/valid"].__setitem__(3, 7),
    "checksums removed": lambda f: f.__delitem__("checksums/images.embeddings"),
    "progress is text": lambda f: _replace(f, "progress", np.array(["a", "b"], dtype=object)),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_damaged_store_gets_a_problem_list_and_exit_1(damage, make_store, rng, cli):
    path, _, _ = _good(make_store, rng, n=10)
    with h5py.File(path, "r+") as f:
        if damage == "prompt dim mismatch":
            f.create_dataset("prompts/category/names", data=np.array(["a", "b"], dtype=object))
        DAMAGE[damage](f)
    problems = verify_store(path)
    assert problems, damage
    result = cli("verify", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "set MGAP_DEBUG" not in result.stderr
    info = cli("info", str(path))
    assert info.returncode in (0, 1) and "Traceback" not in info.stderr
    if info.returncode:
        _one_line_failure(info)


def test_a_flipped_byte_in_the_file_header_is_a_problem_not_a_crash(make_store, rng, cli):
    path, _, _ = _good(make_store, rng)
    raw = bytearray(path.read_bytes())
    for i in range(0, 2048, 97):  # superblock and root object header
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert verify_store(path)
    assert cli("verify", str(path)).returncode == 1
    _one_line_failure(cli("info", str(path)))


def _outside(tmp_path):
    secret = tmp_path / "outside.bin"
    secret.write_bytes(bytes(range(256)) * 4)
    return secret


def test_external_storage_links_and_foreign_virtual_datasets_are_refused(
    make_store, rng, tmp_path, cli
):
    secret = _outside(tmp_path)
    cases = {}
    path, _, _ = _good(make_store, rng, "ext.h5")
    with h5py.File(path, "r+") as f:
        del f["images/embeddings"]
        f.create_dataset(
            "images/embeddings", shape=(10, 6), dtype="f4", external=[(str(secret), 0, 240)]
        )
    cases["keeps its data in an external file"] = path
    path, _, _ = _good(make_store, rng, "link.h5")
    with h5py.File(path, "r+") as f:
        del f["texts/embeddings"]
        f["texts/embeddings"] = h5py.ExternalLink(str(tmp_path / "ext.h5"), "/texts/embeddings")
    cases["external link"] = path
    path, _, _ = _good(make_store, rng, "soft.h5")
    with h5py.File(path, "r+") as f:
        f["images/attributes/x"] = h5py.SoftLink("/images/ids")
    cases["soft link"] = path
    path, _, _ = _good(make_store, rng, "vds.h5")
    other, _, _ = _good(make_store, rng, "other.h5")
    with h5py.File(path, "r+") as f:
        layout = h5py.VirtualLayout(shape=(10, 6), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "images/embeddings", shape=(10, 6))
        del f["images/embeddings"]
        f.create_virtual_dataset("images/embeddings", layout)
    cases["virtual dataset reading"] = path
    for words, store in cases.items():
        problems = verify_store(store)
        assert any(words in p for p in problems), (words, problems)
        with pytest.raises(StoreError, match="not self-contained|cannot be written"):
            open_store(store)
        with pytest.raises(StoreError, match=words.split()[0]):
            StoreWriter(store)
        out = tmp_path / f"export-{store.stem}"
        _one_line_failure(cli("export", str(store), "--out", str(out)))
        assert not out.exists()
    assert secret.read_bytes() == bytes(range(256)) * 4


def test_a_virtual_dataset_over_the_stores_own_shard_is_accepted(make_store, rng, tmp_path):
    path, X, _ = _good(make_store, rng, "own.h5")
    shard = tmp_path / "own.h5.rank0.h5"
    with h5py.File(shard, "w") as g:
        g["images/embeddings"] = X
    with h5py.File(path, "r+") as f:
        layout = h5py.VirtualLayout(shape=X.shape, dtype="f4")
        layout[:] = h5py.VirtualSource(shard.name, "images/embeddings", shape=X.shape)
        del f["images/embeddings"]
        f.create_virtual_dataset("images/embeddings", layout)
    assert not any("virtual" in p for p in verify_store(path))
    np.testing.assert_array_equal(open_store(path).image_embeddings(np.float32), X)


_HOLDER = """
import sys, time
from mgap.store.lock import StoreLock
with StoreLock(sys.argv[1]):
    print("ready", flush=True)
    sys.stdin.readline()  # hold until the test closes stdin
"""


def _holder(store):
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "ready"
    return child


def test_a_second_writer_names_the_holder_and_the_lock_dies_with_it(tmp_path):
    store = tmp_path / "s.h5"
    holder = _holder(store)
    try:
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}.*--wait"):
            StoreLock(store).acquire()
        os.kill(holder.pid, signal.SIGKILL)  # the kernel releases an flock on death
        holder.wait(30)
        with StoreLock(store):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_wait_queues_behind_the_holder(tmp_path):
    store = tmp_path / "s.h5"
    holder = _holder(store)
    t0 = time.monotonic()
    threading.Timer(1.0, holder.stdin.close).start()
    with StoreLock(store, wait=True):
        waited = time.monotonic() - t0
    holder.wait(30)
    assert waited >= 0.9
    assert not (tmp_path / "s.h5.lock").exists()


def test_ls_reports_a_broken_store_and_lists_the_rest(make_store, rng, tmp_path, cli):
    _good(make_store, rng, "good.h5")
    path, _, _ = _good(make_store, rng, "bad.h5")
    with h5py.File(path, "r+") as f:  # what a CSV column named "a/b" used to produce
        f.create_dataset("images/attributes/a/b", data=np.array(["x"] * 10, dtype=object))
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5 at all")
    import json

    result = cli("ls", "--store-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)["stores"]}
    assert entries["good.h5"]["status"] == "complete"
    assert (
        entries["bad.h5"]["status"] == "broken"
        and "/images/attributes/a" in entries["bad.h5"]["error"]
    )
    assert entries["garbage.h5"]["status"] == "broken"
    table = cli("ls", "--store-dir", str(tmp_path))
    assert table.returncode == 0 and "good.h5" in table.stdout and "broken" in table.stdout


def test_readers_refuse_a_store_whose_image_and_text_dims_differ(make_store, rng, cli, tmp_path):
    path, _, _ = _good(make_store, rng, n=10, d=6)
    with h5py.File(path, "r+") as f:
        _replace(f, "texts/embeddings", np.ones((10, 5), np.float32))
    problem = "image dim 6 differs from text dim 5"
    assert problem in verify_store(path)
    with pytest.raises(StoreError, match=f"is damaged or not self-contained: {problem}"):
        open_store(path)
    for command in (
        ("info", str(path)),
        ("gap", str(path)),
        ("export", str(path), "--out", str(tmp_path / "x")),
    ):
        result = cli(*command)
        _one_line_failure(result)
        assert result.returncode == 1 and problem in result.stderr
    # neither can a writer create one
    from mgap.store.build import store_from_arrays

    with pytest.raises(StoreError, match=f"{problem}: not one embedding space"):
        store_from_arrays(
            tmp_path / "t.h5", image_embeddings=np.ones((3, 6)), text_embeddings=np.ones((3, 5))
        )
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "t.h5.creating").exists()


def _in_process(*args: str) -> tuple[int, str]:
    """`mgap ARGS` through the console entry point in this process: (exit code, stderr)."""
    import contextlib
    import io

    from mgap.cli import main

    err, argv = io.StringIO(), sys.argv
    sys.argv = ["mgap", *args]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    return code, err.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        ("gap", "{s}"),
        ("retrieval", "{s}"),
        ("knn", "{s}:image", "{s}:text", "--k", "3"),
        ("experiment", "shift", "{s}", "--lambdas", "0,1"),
        ("cka", "{s}:image", "{s}:text", "--unbiased"),
        ("export", "{s}", "--out", "{s}.out"),
    ],
    ids=lambda c: " ".join(c[:2]).replace(" {s}", ""),
)
def test_check_makes_an_analysis_refuse_a_flipped_bit(command, make_store, rng, monkeypatch):
    monkeypatch.delenv("MGAP_CHECK", raising=False)
    path, _, _ = _good(make_store, rng, n=40, d=6)
    with h5py.File(path, "r") as f:
        offset = f["texts/embeddings"].id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[offset + 4 * 13 + 3] ^= 0x40  # one exponent bit of text row 2
    path.write_bytes(bytes(raw))
    args = [part.format(s=path) for part in command]
    code, err = _in_process(*args)  # unchecked: the changed value goes unnoticed
    assert code == 0 and "error" not in err, err
    code, err = _in_process(*args, "--check")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("mgap: error: ") and "/texts/embeddings block 0" in lines[0]
    assert "fails its checksum" in lines[0]
    assert "MGAP_CHECK" not in os.environ  # the flag ends with the command
