"""torchrun extraction on CPU (gloo) over the real COCO sample: shares, merge, kill, rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mgap.engine.extract.distributed import RankEnv, detect, shares
from mgap.store import open_store

MODEL = "open_clip:ViT-S-32@random"
#: 24 images in blocks of 4: six blocks, three per rank, two batches per block
COMMON = [
    "--model",
    MODEL,
    "--dataset",
    "coco",
    "--split",
    "train2017",
    "--limit",
    "24",
    "--block-rows",
    "4",
    "--batch-size",
    "2",
    "--workers",
    "0",
]
#: torchrun gives every rank one thread; the reference run gets the same
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def test_shares_are_contiguous_block_aligned_and_balanced():
    assert shares(50, 8, 2) == [(0, 32), (32, 50)]  # 7 blocks: 4 + 3
    assert shares(24, 4, 2) == [(0, 12), (12, 24)]
    assert shares(24, 4, 4) == [(0, 8), (8, 16), (16, 20), (20, 24)]
    assert shares(5, 4, 3) == [(0, 4), (4, 5), (5, 5)]  # more ranks than blocks
    for n, b, w in [(1000, 7, 5), (3, 1, 3), (257, 256, 2)]:
        parts = shares(n, b, w)
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(a[1] == c[0] for a, c in zip(parts, parts[1:], strict=False))
        assert all(start % b == 0 for start, _ in parts if start < n)


def test_detect_torchrun_then_slurm_then_single():
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}
    assert detect(env) == RankEnv(3, 8, 1, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0"}
    assert detect(slurm) == RankEnv(5, 16, 1, "slurm")
    assert detect({**slurm, **env}).launcher == "torchrun"
    # an sbatch script outside srun has SLURM_PROCID too, but no job step: one process
    assert detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == RankEnv()
    assert not detect({}).distributed


def _run(cli, data: Path, out: Path, *extra: str, env=None):
    args = [*COMMON, "--data-root", str(data), "--out", str(out), "--json", "--quiet", *extra]
    return cli("extract", *args, env=env)


def _assert_same(a: Path, b: Path) -> None:
    x, y = open_store(a), open_store(b)
    np.testing.assert_array_equal(x.image_embeddings(np.float16), y.image_embeddings(np.float16))
    np.testing.assert_array_equal(x.text_embeddings(np.float16), y.text_embeddings(np.float16))
    np.testing.assert_array_equal(x.image_ids, y.image_ids)
    np.testing.assert_array_equal(x.captions, y.captions)
    np.testing.assert_array_equal(
        x.prompt_embeddings("category")[1], y.prompt_embeddings("category")[1]
    )


@pytest.mark.slow
def test_two_ranks_merge_bit_equal_to_one_process(tiny_coco, tmp_path, cli):
    ref = _run(cli, tiny_coco, tmp_path / "ref.h5", env=ONE_THREAD)
    assert ref.returncode == 0, ref.stderr
    r = _run(cli, tiny_coco, tmp_path / "dist.h5", "--nproc", "2")
    assert r.returncode == 0, r.stderr
    (summary,) = json.loads(r.stdout)["stores"]
    assert summary["status"] == "complete" and summary["note"] == "merged from 2 ranks"
    _assert_same(tmp_path / "ref.h5", tmp_path / "dist.h5")
    store = open_store(tmp_path / "dist.h5")
    assert store.attrs["world_size"] == 2
    assert json.loads(store.attrs["rank_shares"]) == [[0, 12], [12, 24]]
    assert not (tmp_path / "dist.h5.ranks").exists()  # rank files go once the merge verifies
    assert cli("verify", str(tmp_path / "dist.h5")).returncode == 0


@pytest.mark.slow
def test_the_next_extract_of_a_complete_store_removes_rank_stores_left_beside_it(
    tiny_coco, tmp_path, cli
):
    out = tmp_path / "s.h5"
    assert _run(cli, tiny_coco, out).returncode == 0
    folder = out.with_name(out.name + ".ranks")  # as a kill before the merge's cleanup leaves it
    folder.mkdir()
    (folder / "rank-00000-of-00002.h5").write_bytes(b"\0" * 4096)
    r = _run(cli, tiny_coco, out)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stores"][0]["status"] == "complete"
    assert not folder.exists()
    assert cli("verify", str(out)).returncode == 0


def _rank_progress(out: Path, rank: int) -> dict:
    path = out.with_name(out.name + ".ranks") / f"rank-{rank:05d}-of-00002.h5.progress.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


@pytest.mark.slow
def test_killed_rank_then_rerun_gives_the_same_arrays(tiny_coco, tmp_path, cli):
    assert _run(cli, tiny_coco, tmp_path / "ref.h5", env=ONE_THREAD).returncode == 0
    out = tmp_path / "dist.h5"
    cmd = [sys.executable, "-m", "mgap", "extract", *COMMON, "--data-root", str(tiny_coco)]
    cmd += ["--out", str(out), "--quiet", "--nproc", "2"]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline, killed = time.time() + 240, False
    while time.time() < deadline and proc.poll() is None:
        doc = _rank_progress(out, 1)
        if doc.get("phase") == "images" and 4 <= doc.get("images_done", 0) < 12:
            os.kill(doc["pid"], signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    assert killed, "rank 1 ended before it could be killed"
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1
    lines = stderr.strip().splitlines()
    assert lines == [
        "mgap: error: rank 1 of 2 died (SIGKILL); rerun the same command: "
        "blocks already written are kept"
    ]
    assert not out.exists() and _rank_progress(out, 1)["images_done"] >= 4
    assert list(tmp.glob("mgap-torchrun-*")) == []  # the line names no log, so none is kept
    # another world size over the same partial stores: one line, nothing touched
    r = _run(cli, tiny_coco, out, "--nproc", "3")
    assert r.returncode == 2
    assert "world size 2" in r.stderr and "rerun with 2 processes" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _run(cli, tiny_coco, out, "--nproc", "2")
    assert r.returncode == 0, r.stderr
    _assert_same(tmp_path / "ref.h5", out)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody has reaped yet does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_kill_of_the_launchers_group_ends_its_ranks_and_leaves_no_log(tiny_coco, tmp_path):
    out = tmp_path / "dist.h5"
    cmd = [sys.executable, "-m", "mgap", "extract", *COMMON, "--data-root", str(tiny_coco)]
    cmd += ["--out", str(out), "--quiet", "--nproc", "2"]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    deadline, pids = time.time() + 240, []
    while time.time() < deadline and proc.poll() is None:
        docs = [_rank_progress(out, rank) for rank in (0, 1)]
        busy = docs[1].get("phase") == "images" and docs[1].get("images_done", 0) < 12
        if busy and docs[0].get("pid"):  # rank 0 may be ahead, waiting at the barrier
            pids = [d["pid"] for d in docs]
            os.killpg(proc.pid, signal.SIGKILL)  # what `kill -9 -PGID` does
            break
        time.sleep(0.05)
    assert pids, "the ranks ended before the launcher could be killed"
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "a rank outlived its launcher"
    time.sleep(2)
    assert not out.exists()  # no orphan finished the store
    assert list(tmp.glob("mgap-torchrun-*")) == []  # no torchrun log left behind


#: the closing block torchrun prints when a worker fails (torch 2.x, as captured here)
TORCHRUN_FAILURE = """\
============================================================
mgap FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-30_03:41:24
  host      : localhost
  rank      : {rank} (local_rank: {rank})
  exitcode  : {code} (pid: 23838)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_launcher_names_the_rank_that_died(tmp_path):
    from mgap.commands.extract_launch import failure_line, root_cause, strip_nproc

    assert strip_nproc(["extract", "--nproc", "2", "-m", "x", "--nproc=3"]) == [
        "extract",
        "-m",
        "x",
    ]
    killed = TORCHRUN_FAILURE.format(rank=1, code=-9)
    assert root_cause(killed) == (1, -9)
    log = tmp_path / "torchrun.log"
    assert failure_line(killed, ["rank 0 of 2 stopped"], 2, log) == (
        "rank 1 of 2 died (SIGKILL); rerun the same command: blocks already written are kept"
    )
    # a rank that exits with its own one-line error: that line, not torchrun's
    usage = TORCHRUN_FAILURE.format(rank=2, code=2)
    assert failure_line(usage, ["bad world size"], 3, log) == "bad world size"
    assert failure_line("no summary", [], 2, log) == f"torchrun failed; see {log}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _srun(data: Path, out: Path, port: int) -> list[subprocess.Popen]:
    """What `srun -n 2 mgap extract ...` does on one node: one process per task, each told
    its place by SLURM's variables (no torchrun in between)."""
    cmd = [sys.executable, "-m", "mgap", "extract", *COMMON, "--data-root", str(data)]
    cmd += ["--out", str(out), "--quiet"]
    procs = []
    for task in range(2):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env.update(
            SLURM_PROCID=str(task),
            SLURM_LOCALID=str(task),
            SLURM_NTASKS="2",
            SLURM_STEP_ID="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs


@pytest.mark.slow
def test_srun_task_killed_then_rerun_gives_the_same_arrays(tiny_coco, tmp_path, cli):
    assert _run(cli, tiny_coco, tmp_path / "ref.h5", env=ONE_THREAD).returncode == 0
    out = tmp_path / "dist.h5"
    rank0, rank1 = _srun(tiny_coco, out, _free_port())
    deadline, killed = time.time() + 240, False
    while time.time() < deadline and rank1.poll() is None:
        doc = _rank_progress(out, 1)
        if doc.get("phase") == "images" and 4 <= doc.get("images_done", 0) < 12:
            rank1.send_signal(signal.SIGKILL)  # srun does not restart a task
            killed = True
            break
        time.sleep(0.05)
    assert killed, "task 1 ended before it could be killed"
    rank1.communicate(timeout=60)
    _, stderr = rank0.communicate(timeout=240)  # the survivor must not wait forever
    assert rank0.returncode == 1
    (line,) = stderr.strip().splitlines()
    assert line.startswith("mgap: error: another rank of 2 died before finishing its share")
    assert line.endswith("rerun the same command: blocks already written are kept")
    assert not out.exists() and _rank_progress(out, 1)["images_done"] >= 4
    procs = _srun(tiny_coco, out, _free_port())
    for proc in procs:
        proc.communicate(timeout=240)
        assert proc.returncode == 0
    _assert_same(tmp_path / "ref.h5", out)
