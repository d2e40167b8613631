"""A disk that fills between mgap's space check and an HDF5 metadata write (issue 17 item 1).

The space check cannot close the race with another process filling the disk, and HDF5 is
not transactional: a metadata write that fails half-way used to leave a store no command
could open ("addr overflow"). Here the check passes and then a file-size limit equal to
the store's size is set (in a forked child, so pytest keeps its limits): every write that
would grow the file fails with EFBIG. The writer must say "disk full" in one line and
leave the store byte for byte as it was: partial, and completed by the next writer.
"""

from __future__ import annotations

import hashlib
import os
import resource

import numpy as np
import pytest

from mgap.core.errors import MgapError
from mgap.store import undo, writer
from mgap.store.verify import verify_store
from mgap.store.writer import StoreLayout, StoreWriter, create_store


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store(path, rng, n: int = 8, d: int = 16):
    layout = StoreLayout(
        image_ids=[f"i{k}" for k in range(n)],
        image_paths=[f"{k}.jpg" for k in range(n)],
        captions=[f"caption {k}" for k in range(n)],
        caption_image_row=np.arange(n),
        category_names=["dog", "cat"],
        supercategories=["animal", "animal"],
        primary=np.zeros(n, dtype=np.int64),
        labels=np.zeros((n, 2), dtype=np.uint8),
    )
    w = create_store(path, layout, {}, image_dim=d, text_dim=d, dtype="float32", block_rows=2)
    X = rng.normal(size=(n, d)).astype(np.float32)
    w.write_texts(0, X + 1)
    valid = np.ones(n)
    valid[-1] = 0  # the last image could not be decoded
    for lo in range(0, n, 2):
        w.write_images(lo, X[lo : lo + 2], valid[lo : lo + 2])
    w.add_skipped(f"i{n - 1}", "a reason that goes into /skipped at the end")
    return w


OPS = {
    "finish": lambda w: w.finish(),
    "set_attrs": lambda w: w.set_attrs(resumes=[{"batch_size": 3, "note": "x" * 5000}]),
    "write_prompts": lambda w: w.write_prompts("category", ["dog", "cat"], np.ones((2, 16))),
}


def _squeezed(op, w, stderr) -> tuple[int, str]:
    """Run `op(w)` in a forked child whose file-size limit drops to the store's size right
    after the writer's space check passed; (exit code, the error's one line). The child's
    stderr goes to the file `stderr`."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code, text = 3, "no error"
        try:
            os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT), 2)
            real = writer.ensure_space

            def check(path, grow):
                real(path, grow)
                hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
                resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path), hard))

            writer.ensure_space = check
            op(w)
            code = 0
        except MgapError as exc:
            code, text = 1, exc.one_line()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as a failure
            code, text = 2, repr(exc)
        finally:
            os.write(write, text.encode())
            os._exit(code)
    os.close(write)
    text = os.read(read, 4096).decode()
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


@pytest.mark.parametrize("op", sorted(OPS))
def test_a_metadata_write_failing_after_the_space_check_leaves_the_store_as_it_was(
    op, tmp_path, rng
):
    path = tmp_path / "s.h5"
    w = _store(path, rng)
    before = _sha(path)
    code, line = _squeezed(OPS[op], w, tmp_path / "stderr")
    assert code == 1, line
    assert (tmp_path / "stderr").read_text() == ""  # nothing printed by h5py on the way
    assert line.startswith("disk full: ")
    assert f"file size limit {path.stat().st_size} bytes" in line and str(path) in line
    assert "run the same command again" in line
    assert _sha(path) == before and not undo.undo_path(path).exists()
    assert verify_store(path) == ["status is 'partial', not complete"]
    again = StoreWriter(path)  # the limit is lifted: the same write, then the rest
    OPS[op](again)
    if op != "finish":
        again.finish()
    assert verify_store(path) == []


def test_a_metadata_write_killed_half_way_is_rolled_back_by_the_next_writer(tmp_path, rng):
    path = tmp_path / "s.h5"
    _store(path, rng)
    before = _sha(path)
    undo.save(path)
    with path.open("r+b") as f:  # what a kill in the middle of HDF5's flush can leave
        f.seek(0, os.SEEK_END)
        f.write(b"\xff" * 3000)
        f.seek(96)
        f.write(b"\x00" * 200)
    assert verify_store(path) != []
    StoreWriter(path).finish()
    assert not undo.undo_path(path).exists()
    assert verify_store(path) == []
    # the rollback restored every byte before the finish ran
    undo.save(path)
    assert undo.restore(path) and not undo.undo_path(path).exists()
    assert _sha(path) != before  # finish changed it; a second restore is a no-op
    assert undo.restore(path) is False


def test_the_undo_copy_leaves_the_embedding_payload_out(tmp_path, rng):
    path = tmp_path / "s.h5"
    _store(path, rng, n=2000, d=64)  # 2 x 512 KB of float32 rows
    undo.save(path)
    payload = 2 * 2000 * 64 * 4
    saved = undo.undo_path(path).stat().st_size
    assert saved < path.stat().st_size - payload + 4096, (saved, path.stat().st_size)
    undo.discard(path)
