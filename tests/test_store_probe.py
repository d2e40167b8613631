"""A store whose bytes make HDF5 loop forever (issue 17): probed in a child, never opened here.

`fixtures/hang_store.h5` is a real case from the mutation fuzzer (seed 1717): a few bytes
of a store's global heap changed so that reading the root attribute `status` (or
`finished`) spins inside HDF5's C code, where no Python signal can stop it. Every command
must still answer in one line, exit 1, and in bounded time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mgap.store import probe

HANG = Path(__file__).parent / "fixtures" / "hang_store.h5"
#: the probe's base timeout in these tests; a run must end well inside BOUND_S
FAST = {"MGAP_PROBE_TIMEOUT": "1"}
BOUND_S = 30


@pytest.fixture
def stores(tmp_path, make_store, rng):
    """A directory with a good store, the hanging store, and another good store."""
    X = rng.normal(size=(5, 3)).astype(np.float32)
    make_store("a_good.h5", X=X, Y=X + 1)
    make_store("c_good.h5", X=X, Y=X - 1)
    shutil.copy(HANG, tmp_path / "b_hang.h5")
    return tmp_path


@pytest.fixture
def fast_probe(monkeypatch):
    monkeypatch.setenv("MGAP_PROBE_TIMEOUT", "1")
    probe._verdicts.clear()
    probe._foreign.clear()
    yield
    probe._verdicts.clear()
    probe._foreign.clear()


def _timed(cli, *args):
    start = time.monotonic()
    result = cli(*args, env=FAST, timeout=BOUND_S * 2)
    return result, time.monotonic() - start


def _single_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_info_and_verify_on_the_hanging_store_answer_in_one_line(stores, cli):
    path = str(stores / "b_hang.h5")
    info, seconds = _timed(cli, "info", path)
    assert info.returncode == 1 and seconds < BOUND_S
    line = _single_line(info)
    assert line.startswith(f"mgap: error: {path} is damaged: HDF5 did not finish reading")
    assert "within 1 s" in line and "MGAP_PROBE_TIMEOUT" in line
    verify, seconds = _timed(cli, "verify", path)
    assert verify.returncode == 1 and seconds < BOUND_S
    assert _single_line(verify).startswith(f"{path}: HDF5 did not finish reading its metadata")


def test_ls_shows_the_hanging_store_broken_and_lists_the_rest(stores, cli):
    result, seconds = _timed(cli, "ls", "--store-dir", str(stores), "--json")
    assert result.returncode == 0 and seconds < BOUND_S, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)["stores"]}
    assert [entries[n]["status"] for n in sorted(entries)] == ["complete", "broken", "complete"]
    assert "HDF5 did not finish reading its metadata" in entries["b_hang.h5"]["error"]
    assert entries["c_good.h5"]["n_images"] == 5


def test_ls_says_not_an_mgap_store_for_other_hdf5_files_and_still_lists_a_store(
    tmp_path, make_store, rng, cli
):
    import h5py

    X = rng.normal(size=(4, 3)).astype(np.float32)
    make_store("real.h5", X=X, Y=X + 1)
    for i in range(300):
        with h5py.File(tmp_path / f"other{i:03d}.h5", "w") as f:
            f["values"] = np.arange(i + 1)
            f.attrs["kind"] = "someone else's"
    result, seconds = _timed(cli, "ls", "--store-dir", str(tmp_path), "--json")
    assert result.returncode == 0 and seconds < BOUND_S, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)["stores"]}
    assert len(entries) == 301
    assert entries["real.h5"]["status"] == "complete" and entries["real.h5"]["n_images"] == 4
    others = [e for name, e in entries.items() if name != "real.h5"]
    assert {e["status"] for e in others} == {"not-a-store"}
    assert entries["other007.h5"]["error"] == f"{tmp_path / 'other007.h5'} is not an mgap store"
    table = cli("ls", "--store-dir", str(tmp_path), env=FAST, timeout=BOUND_S * 2)
    assert table.returncode == 0 and "real.h5" in table.stdout
    assert "other" not in table.stdout
    assert "300 .h5 files in" in table.stderr and "are not mgap stores (left out)" in table.stderr
    assert probe.probe(tmp_path / "other000.h5") is None
    assert probe.not_a_store(tmp_path / "other000.h5")
    assert not probe.not_a_store(tmp_path / "real.h5")


def test_a_forked_probe_and_a_subprocess_probe_give_the_same_verdicts(
    stores, fast_probe, monkeypatch
):
    paths = [stores / name for name in ("a_good.h5", "b_hang.h5", "c_good.h5")]
    # earlier tests may have left threads (a file reader), so each path is chosen here
    monkeypatch.setattr(probe, "_can_fork", lambda: True)
    forked = probe.probe_many(paths)
    assert forked[paths[0]] is None and forked[paths[2]] is None
    assert forked[paths[1]].startswith("HDF5 did not finish reading its metadata within 1")
    probe._verdicts.clear()
    monkeypatch.setattr(probe, "_can_fork", lambda: False)
    assert probe.probe_many(paths) == forked


def test_only_a_single_threaded_process_forks():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not probe._can_fork()
    finally:
        stop.set()
        other.join()


def test_a_verdict_is_remembered_until_the_file_changes(stores, fast_probe, monkeypatch):
    good = stores / "a_good.h5"
    assert probe.probe(good) is None
    spawned = []
    monkeypatch.setattr(probe, "_run", lambda paths: spawned.append(paths) or (len(paths), None))
    assert probe.probe(good) is None and spawned == []
    os.utime(good, ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new mtime
    assert probe.probe(good) is None and spawned == [[good]]


def test_a_child_killed_by_a_signal_makes_the_file_damaged(stores, fast_probe, monkeypatch):
    crashing = stores / "c_good.h5"

    def walk(path):  # what a segfault inside HDF5 does to the child
        if Path(path) == crashing:
            os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(probe, "walk", walk)
    monkeypatch.setattr(probe, "_can_fork", lambda: True)  # the patched walk runs in a fork
    verdicts = probe.probe_many([crashing, stores / "a_good.h5"])
    assert verdicts == {
        crashing: "HDF5 crashed reading its metadata (SIGSEGV)",
        stores / "a_good.h5": None,
    }


def test_a_store_this_process_wrote_is_not_probed_again(tmp_path, fast_probe, monkeypatch):
    from mgap.store.build import store_from_arrays

    spawned = []
    real = probe._run
    monkeypatch.setattr(probe, "_run", lambda paths: spawned.append(paths) or real(paths))
    X = np.eye(4, dtype=np.float32)
    path = store_from_arrays(tmp_path / "s.h5", image_embeddings=X, text_embeddings=X)
    from mgap.store import open_store

    assert open_store(path).n_images == 4 and spawned == []
