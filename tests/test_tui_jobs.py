"""The TUI's Textual-free parts: job launching and scanning, catalog parsing, formatting."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from job_helpers import fake_command

from mgap.core.errors import UsageError
from mgap.store.process import JOB_TOKEN_ENV, command_line, start_ticks
from mgap.store.progress import read_progress, write_progress
from mgap.tui import analysis_jobs
from mgap.tui.jobs import (
    DatasetChoice,
    LaunchedJob,
    cancel_job,
    cancel_refusal,
    extract_command,
    format_eta,
    launch_extract,
    progress_bar,
    scan_jobs,
    tail,
)
from mgap.tui.launcher import launch_detached
from mgap.tui.sources import _reason, dataset_roots, parse_catalog

SYNTH = DatasetChoice("synthetic", "synthetic", None, "test", 8)


def test_extract_command_names_every_model_and_the_dataset(tmp_path):
    coco = DatasetChoice("c", "coco", tmp_path / "coco", "val2017", None)
    command = extract_command(["toy:a", "toy:b"], coco, tmp_path, "cpu")
    assert command[:4] == [sys.executable, "-m", "mgap", "extract"]
    assert command[4:] == [
        "--model", "toy:a", "--model", "toy:b",
        "--dataset", "coco", "--split", "val2017",
        "--data-root", str(tmp_path / "coco"),
        "--store-dir", str(tmp_path), "--device", "cpu",
    ]  # fmt: skip
    assert extract_command(["toy:a"], SYNTH, tmp_path)[-6:-4] == ["--limit", "8"]
    with pytest.raises(UsageError, match="no model selected"):
        extract_command([], SYNTH, tmp_path)


def test_progress_bar_and_eta():
    assert progress_bar(0.5, 10) == "█████░░░░░  50%"
    assert progress_bar(1.0, 4, ascii_only=True) == "#### 100%"
    assert progress_bar(0.0, 4, ascii_only=True) == "----   0%"
    assert format_eta(None) == "-"
    assert format_eta(75) == "1m15s"
    assert format_eta(3 * 3600 + 120) == "3h02m"


def test_tail_keeps_the_latest_state_of_carriage_return_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("first\nimages 1/8\rimages 4/8\rimages 8/8\n\nlast line\n")
    assert tail(log, 2) == ["images 8/8", "last line"]
    assert tail(tmp_path / "missing.log") == []


def test_scan_jobs_orders_running_first_and_flags_lost_jobs(tmp_path):
    live = tmp_path / "a.h5"
    dead = tmp_path / "b.h5"
    done = tmp_path / "c.h5"
    write_progress(live, pid=os.getpid(), status="running", images_done=5, n_images=10)
    write_progress(dead, pid=2**22 + 12345, status="running", images_done=1, n_images=10)
    write_progress(done, pid=os.getpid(), status="complete", images_done=10, n_images=10)
    rows = scan_jobs(tmp_path, [])
    assert [r.name for r in rows][0] == "a.h5"
    by_name = {r.name: r for r in rows}
    assert (by_name["a.h5"].status, by_name["a.h5"].running, by_name["a.h5"].fraction) == (
        "running",
        True,
        0.5,
    )
    assert by_name["b.h5"].status == "lost" and not by_name["b.h5"].running
    assert by_name["c.h5"].status == "complete" and not by_name["c.h5"].running


def test_a_launched_job_is_detached_and_its_failure_reaches_the_jobs_list(tmp_path):
    """A bad dataset kind makes `mgap extract` exit 2 at once: the row says why, from the log."""
    bad = DatasetChoice("nope", "no-such-kind", None, "test")
    job = launch_extract(["toy:demo"], bad, tmp_path)
    assert os.getsid(job.pid) == job.pid  # its own session: a hang-up of ours never reaches it
    assert job.log.parent == tmp_path.resolve()
    assert job.process.wait(timeout=60) == 2
    (row,) = scan_jobs(tmp_path, [job])
    assert row.status == "failed" and not row.running
    assert "unknown dataset kind" in row.error
    assert job.log.read_text().startswith("$ ")


def _wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _crafted(store: Path, pid: int, **fields: object) -> None:
    """A progress file naming `pid` with everything /proc says about it copied in."""
    _wait_for(lambda: (command_line(pid) or [""])[-1] == "extract")
    write_progress(
        store, pid=pid, status="running", store=str(store), cmdline=command_line(pid),
        proc_start=start_ticks(pid), **fields,
    )  # fmt: skip


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_cancel_never_signals_a_process_a_crafted_progress_file_names(tmp_path):
    """Issue 26 item 3: command line, start time and an `extract` word copied from /proc are
    no proof; neither is a token digest that process's environment does not match."""
    token = "a" * 64
    victim = subprocess.Popen(
        ["bash", "-c", "sleep 300; true", "extract"],
        start_new_session=True,
        env={**os.environ, JOB_TOKEN_ENV: token},
    )
    try:
        for name, digest in [("s.h5", None), ("t.h5", hashlib.sha256(token.encode()).hexdigest())]:
            store = tmp_path / name
            _crafted(store, victim.pid, job_token_sha256=digest)
            _crafted(analysis_jobs.job_target(store), victim.pid, job_token_sha256=digest)
            assert cancel_job(victim.pid, store.with_name(name + ".progress.json")) is False
            assert analysis_jobs.cancel(analysis_jobs.progress_file(store)) is False
            time.sleep(0.2)
            assert victim.poll() is None  # never signalled
        assert cancel_refusal(victim.pid, tmp_path / "s.h5.progress.json") == (
            "it was not started by the TUI"
        )
        assert cancel_refusal(victim.pid, tmp_path / "t.h5.progress.json") == "it is not mgap"
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_cancel_signals_an_mgap_job_the_launcher_started_for_that_store_only(tmp_path):
    writer = (
        "import sys, time\n"
        "from mgap.store.process import process_identity\n"
        "from mgap.store.progress import write_progress\n"
        "import os\n"
        "write_progress(sys.argv[2], pid=os.getpid(), status='running', store=sys.argv[2],"
        " **process_identity())\n"
        "time.sleep(60)\n"
    )
    store, other = tmp_path / "a" / "s.h5", tmp_path / "b" / "s.h5"
    store.parent.mkdir()
    other.parent.mkdir()
    command = fake_command(tmp_path, "extract", str(store), body=writer)
    job = launch_detached(command, tmp_path / "job.log").process
    try:
        _wait_for(lambda: read_progress(store) is not None)
        doc = read_progress(store)
        environ = Path(f"/proc/{job.pid}/environ").read_bytes().split(b"\0")
        [token] = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"MGAP_JOB_TOKEN=")]
        assert doc["job_token_sha256"] == hashlib.sha256(token).hexdigest()
        assert token.decode() not in Path(str(store) + ".progress.json").read_text()
        # the same record beside another store: that store is not in the job's command line
        write_progress(other, **{**doc, "store": str(other)})
        assert cancel_refusal(job.pid, str(other) + ".progress.json") == (
            "its command line does not name the store"
        )
        assert cancel_job(job.pid, str(other) + ".progress.json") is False
        assert job.poll() is None
        assert cancel_job(job.pid, str(store) + ".progress.json") is True
        assert job.wait(30) == -15
    finally:
        job.kill()
        job.wait()


def test_a_launched_job_gives_way_to_its_progress_files(tmp_path):
    store = tmp_path / "synthetic-test__toy-demo.h5"
    write_progress(store, pid=os.getpid(), status="running", images_done=3, n_images=8)
    job = LaunchedJob(os.getpid(), ["mgap"], tmp_path / "x.log", "synthetic", ["toy:demo"], 0.0)
    (row,) = scan_jobs(tmp_path, [job])
    assert row.name == store.name and row.key.endswith(".progress.json")


def test_parse_catalog_puts_usable_models_first():
    doc = [
        {"spec": "hf:x", "family": "hf", "available_offline": False, "image": True, "text": True},
        {"spec": "toy:demo", "family": "toy", "available_offline": True, "image": True},
        {"spec": "st:y", "family": "st", "available_offline": False, "recommended": True},
        {"family": "hf"},
    ]
    rows = parse_catalog(doc)
    assert [r.spec for r in rows] == ["toy:demo", "st:y", "hf:x"]
    assert rows[0].sides == "image" and rows[2].sides == "image+text"
    assert parse_catalog({"models": doc[:1]})[0].spec == "hf:x"


def test_reason_picks_the_error_line_out_of_a_click_box():
    stderr = "╭─ Error ─────╮\n│ No such command 'models'. │\n╰─────────────╯\n"
    assert _reason(stderr) == "No such command 'models'."
    assert _reason("") == "no output"


def test_dataset_roots_merge_config_and_command_line(tmp_path):
    roots = dataset_roots({"coco": tmp_path}, [tmp_path, tmp_path / "other"])
    assert roots == [("coco", tmp_path), ("other", tmp_path / "other")]


@pytest.mark.slow
def test_catalog_subprocess_lists_models_without_torch_here():
    """The real `mgap models --json` (slow: it imports open_clip in the child)."""
    from mgap.tui.sources import CatalogLoader

    rows = CatalogLoader().run()
    assert rows and any(r.available_offline for r in rows)
    assert all(":" in r.spec for r in rows)


def test_store_scanner_describes_a_changing_store_at_most_every_few_seconds(
    make_store, monkeypatch
):
    import numpy as np

    from mgap.store.listing import list_stores
    from mgap.tui import store_scan

    path = make_store("a.h5", X=np.eye(3), Y=np.eye(3))
    make_store("b.h5", X=np.eye(3), Y=np.eye(3))
    calls = []
    monkeypatch.setattr(store_scan, "describe", lambda p: calls.append(p.name) or p.name)
    scanner = store_scan.StoreScanner(path.parent)
    assert scanner.scan() == ["a.h5", "b.h5"]
    assert scanner.scan() == ["a.h5", "b.h5"] and len(calls) == 2  # unchanged: cached
    with path.open("ab") as fh:
        fh.write(b"\0")  # the file changes, as it does under a writing job
    scanner.scan()
    assert len(calls) == 2  # changed, but described a moment ago
    scanner.scan(force=True)
    assert calls[2:] == ["a.h5"]
    monkeypatch.undo()
    entries = store_scan.StoreScanner(path.parent).scan()
    assert [e.to_dict() for e in entries] == [
        e.to_dict() for e in list_stores(path.parent)
    ]  # same entries as the catalog's own listing


@pytest.mark.parametrize(
    ("status", "expected"), [("complete", "already complete"), ("partial", "exited")]
)
def test_a_job_that_found_its_store_complete_says_so(make_store, status, expected):
    """`mgap extract` writes no progress for a store it skips: exit 0 + complete store."""
    import subprocess

    import h5py
    import numpy as np

    from mgap.store.naming import store_filename

    store = make_store(store_filename("synthetic", "test", "toy:demo"), X=np.eye(3), Y=np.eye(3))
    with h5py.File(store, "a") as f:
        f.attrs["status"] = status
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    assert process.wait(timeout=60) == 0
    job = LaunchedJob(
        process.pid, ["mgap"], store.parent / "x.log", "synthetic", ["toy:demo"], 0.0,
        process, (store,),
    )  # fmt: skip
    (row,) = scan_jobs(store.parent, [job])
    assert (row.status, row.running) == (expected, False)
