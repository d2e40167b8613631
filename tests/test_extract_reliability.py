"""`mgap extract` against its users' machines (issue 17 items 1, 2, 3, 5, 6, 7): full disks,
inputs edited between a kill and the resume, a second writer, a reused pid, FIFOs and
column names that cannot be stored. End to end on the real COCO sample.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from job_helpers import fake_command, token_environment

from mgap.store import open_store
from mgap.store.lock import StoreLock
from mgap.store.space import DiskFullError
from mgap.store.verify import verify_store
from mgap.store.writer import StoreLayout, StoreWriter, create_store

MODEL = "open_clip:ViT-S-32@random"


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "extract",
        "--model",
        MODEL,
        "--dataset",
        "coco",
        "--split",
        "train2017",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--workers",
        "0",
        "--quiet",
        "--json",
        *extra,
    ]


def _one_line(result) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert lines[0].startswith("mgap: error: ") and "MGAP_DEBUG" not in lines[0]
    return lines[0]


def _coco(tiny_coco: Path, tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    shutil.copytree(tiny_coco, root)
    return root


# ---- 1. full disk ------------------------------------------------------------------------
def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only); remount it larger with `grow()`."""
    where = tmp_path / "disk"
    if not _mount_tmpfs(where, "1m"):
        pytest.skip("mounting a tmpfs needs root and mount(8)")

    def grow(size: str = "64m") -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)

    try:
        yield where, grow
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_tmpfs_stops_in_one_line_and_the_same_command_completes(
    tiny_coco, small_disk, tmp_path, cli
):
    disk, grow = small_disk
    (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))  # leave 64 KiB
    out = disk / "s.h5"
    args = _args(tiny_coco, out, "--limit", "6", "--block-rows", "2")
    line = _one_line(cli(*args))
    assert "disk full" in line and str(disk) in line and "run the same command again" in line
    assert not (disk / "s.h5.creating").exists() and not (disk / "s.h5.lock").exists()
    grow()
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "complete" and verify_store(out) == []


def _layout(n: int = 8) -> StoreLayout:
    return StoreLayout(
        image_ids=[f"i{k}" for k in range(n)],
        image_paths=[f"{k}.jpg" for k in range(n)],
        captions=[f"caption {k}" for k in range(n)],
        caption_image_row=np.arange(n),
    )


def test_a_disk_that_fills_mid_run_loses_nothing_written_and_no_metadata_is_written(
    small_disk, rng
):
    disk, grow = small_disk
    path = disk / "s.h5"
    writer = create_store(path, _layout(8), {}, image_dim=16, text_dim=16, block_rows=2)
    X = rng.normal(size=(8, 16)).astype(np.float16)
    writer.write_texts(0, X)  # text rows: one write of four blocks
    writer.write_images(0, X[:2], np.ones(2))
    writer.write_images(2, X[2:4], np.ones(2))
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * (free - 4096))
    # block writes go to space allocated at creation: they still succeed on a full disk
    writer.write_images(4, X[4:6], np.ones(2))
    writer.write_images(6, X[6:8], np.ones(2))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DiskFullError, match=f"disk full: {disk}"):
        writer.finish()  # would grow the file: refused before HDF5 is touched
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    store = open_store(path)
    assert store.status == "partial" and (store.images_done, store.texts_done) == (8, 8)
    assert verify_store(path) == ["status is 'partial', not complete"]
    (disk / "filler").unlink()
    StoreWriter(path).finish()
    assert verify_store(path) == []
    np.testing.assert_array_equal(open_store(path).image_embeddings(np.float16), X)


def _limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_file_size_limit_stops_in_one_line_and_the_same_command_completes(tiny_coco, tmp_path):
    out = tmp_path / "s.h5"
    args = [sys.executable, "-m", "mgap", *_args(tiny_coco, out, "--limit", "6")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    limited = subprocess.run(
        args, capture_output=True, text=True, env=env, preexec_fn=_limited(200_000), timeout=600
    )
    line = _one_line(limited)
    assert "disk full" in line and "file size limit 200000 bytes" in line
    assert limited.returncode != 139
    assert not out.exists() and not (tmp_path / "s.h5.creating").exists()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert verify_store(out) == []


#: `mgap ARGS`, with a file-size limit equal to the store's size set right after the space
#: check of `StoreWriter.finish` passed: another process filling the disk in between
_SQUEEZE = """
import os, resource, sys
from mgap.store import writer

real_check, real_finish, squeeze = writer.ensure_space, writer.StoreWriter.finish, []

def check(path, grow):
    real_check(path, grow)
    if squeeze:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path), hard))

def finish(self, *args, **kwargs):
    squeeze.append(True)
    return real_finish(self, *args, **kwargs)

writer.ensure_space, writer.StoreWriter.finish = check, finish
sys.argv = ["mgap", *sys.argv[1:]]
from mgap.cli import main
main()
"""


@pytest.mark.slow
def test_a_disk_filled_after_the_space_check_leaves_a_resumable_store(tiny_coco, tmp_path, cli):
    out = tmp_path / "s.h5"
    args = _args(tiny_coco, out, "--limit", "6", "--block-rows", "2")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    squeezed = subprocess.run(
        [sys.executable, "-c", _SQUEEZE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    line = _one_line(squeezed)
    assert "disk full" in line and "cannot take its final status" in line
    assert f"file size limit {out.stat().st_size} bytes" in line
    assert verify_store(out) == ["status is 'partial', not complete"]
    assert not (tmp_path / "s.h5.undo").exists()
    store = open_store(out)
    assert (store.images_done, store.texts_done) == (6, store.n_texts_total)
    again = cli(*args)  # the same command, the limit lifted
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "complete" and verify_store(out) == []


# ---- 2. inputs changed between a kill and the resume -------------------------------------
def _as_if_killed(path: Path, images_done: int, texts_done: int) -> None:
    """What a SIGKILL after a few blocks leaves: status partial, /progress behind."""
    with h5py.File(path, "r+") as f:
        f.attrs["status"] = "partial"
        f["progress"][...] = [images_done, texts_done]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_resume_refuses_changed_inputs_and_records_another_batch_size(tiny_coco, tmp_path, cli):
    root = _coco(tiny_coco, tmp_path)
    out = tmp_path / "s.h5"
    args = _args(root, out, "--limit", "6", "--block-rows", "2", "--batch-size", "2")
    assert cli(*args).returncode == 0
    _as_if_killed(out, 2, 4)
    captions = root / "annotations" / "captions_train2017.json"
    original = captions.read_bytes()
    data = json.loads(original)
    data["annotations"][0]["caption"] = "an edited caption"
    captions.write_text(json.dumps(data))
    line = _one_line(cli(*args))
    assert "was started with other inputs" in line and "annotation_sha256 changed" in line
    assert "--overwrite" in line
    captions.write_bytes(original)
    line = _one_line(cli(*args[:-1], "2", "--store-dtype", "float32"))
    assert "store dtype (--store-dtype) changed (was float16, now float32)" in line
    resumed = cli(*args[:-1], "3")
    assert resumed.returncode == 0, resumed.stderr
    note = json.loads(resumed.stdout)["stores"][0]["note"]
    assert note == "resumed at image row 2 with batch size 3 (recorded)"
    store = open_store(out)
    (resume,) = json.loads(store.attrs["resumes"])
    assert (
        resume["batch_size"] == 3 and resume["images_done"] == 2 and store.attrs["batch_size"] == 2
    )
    assert verify_store(out) == []


# ---- 3. a second writer ---------------------------------------------------------------------
def test_a_second_extract_names_the_writer_holding_the_store(tiny_coco, tmp_path, cli):
    out = tmp_path / "s.h5"
    with StoreLock(out):
        line = _one_line(cli(*_args(tiny_coco, out, "--limit", "2")))
    assert f"is being written by pid {os.getpid()}" in line and "--wait" in line
    assert not out.exists()


# ---- 5. the TUI signals only the extract that wrote the progress file -------------------------
_CHILD = """
import sys, time
from mgap.store.process import process_identity
from mgap.store.progress import write_progress
import os
write_progress(sys.argv[1], pid=os.getpid(), status="running", store=sys.argv[1], **process_identity())
time.sleep(60)
"""


def test_cancel_signals_only_the_extract_that_wrote_the_progress_file(tmp_path):
    from mgap.store.naming import progress_path
    from mgap.tui.jobs import cancel_job

    store = tmp_path / "s.h5"
    child = subprocess.Popen(
        fake_command(tmp_path, str(store), "extract", body=_CHILD), env=token_environment()
    )
    try:
        deadline = time.monotonic() + 60
        while not progress_path(store).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        doc = json.loads(progress_path(store).read_text())
        assert doc["cmdline"][-1] == "extract" and isinstance(doc["proc_start"], int)
        # the same pid with another start time is a reused pid: nothing is sent
        progress_path(store).write_text(json.dumps({**doc, "proc_start": doc["proc_start"] - 1}))
        assert cancel_job(child.pid, progress_path(store)) is False
        assert child.poll() is None
        progress_path(store).write_text(json.dumps(doc))
        assert cancel_job(child.pid, progress_path(store)) is True
        assert child.wait(30) == -15
    finally:
        child.kill()
        child.wait()


# ---- 6. FIFOs and other non-regular image files ------------------------------------------------
@pytest.mark.slow
def test_an_image_that_is_a_fifo_is_skipped_with_a_reason_not_a_hang(tiny_coco, tmp_path, cli):
    from mgap.engine.datasets import load_manifest

    root = _coco(tiny_coco, tmp_path)
    record = load_manifest("coco", root, "train2017", 4).records[1]
    image = root / record.path
    image.unlink()
    os.mkfifo(image)
    out = tmp_path / "s.h5"
    result = cli(*_args(root, out, "--limit", "4"), timeout=300)
    assert result.returncode == 0, result.stderr
    store = open_store(out)
    assert store.n_images == 3 and "FIFO" in store.skipped[record.id]


# ---- 7. column names that cannot name a store attribute ----------------------------------------
@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("image,caption,a/b", "column name 'a/b' cannot be stored"),
        ("image,caption,", "empty header"),
    ],
)
def test_csv_columns_that_cannot_be_stored_are_refused_before_any_store(
    tiny_coco, tmp_path, cli, header, words
):
    image = sorted((tiny_coco / "train2017").glob("*.jpg"))[0]
    table = tmp_path / "t.csv"
    table.write_text(f"{header}\n{image},a dog,red\n")
    out = tmp_path / "s.h5"
    args = ["extract", "-m", MODEL, "-d", "csv", "--data-root", str(table), "--out", str(out)]
    line = _one_line(cli(*args))
    assert words in line and "t.csv line 2" in line
    assert not out.exists()


def test_jsonl_key_with_a_slash_is_refused(tmp_path, cli):
    table = tmp_path / "t.jsonl"
    table.write_text(json.dumps({"image": "x.jpg", "caption": "a", "colour/shade": "red"}) + "\n")
    line = _one_line(
        cli(
            "extract",
            "-m",
            MODEL,
            "-d",
            "jsonl",
            "--data-root",
            str(table),
            "--out",
            str(tmp_path / "s.h5"),
        )
    )
    assert "'colour/shade'" in line
