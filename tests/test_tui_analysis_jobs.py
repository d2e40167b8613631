"""Analyses of a large store as detached `mgap retrieval` / `mgap gap` jobs (issue 11, 5 and 6).

The job threshold is lowered through MGAP_TUI_JOB_PAIRS so a 30-image store counts as
large: the gap report and the retrieval result arrive from the job processes through the
store's sidecar cache (tests/test_tui_gap_job.py: the gap job's summary, progress, cache).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time

import numpy as np
import pytest
from rich.console import Console

pytest.importorskip("textual")

from job_helpers import fake_command  # noqa: E402
from tui_helpers import settle, text, two_category_store  # noqa: E402

from mgap.core.errors import MgapError  # noqa: E402
from mgap.store.progress import pid_alive, read_progress, write_progress  # noqa: E402
from mgap.tui import analysis_jobs  # noqa: E402
from mgap.tui.app import MgapApp  # noqa: E402

N = 30


def _pair_store(make_store, name: str = "big.h5"):
    return two_category_store(make_store, name)


def _recall_at_1(queries: np.ndarray, gallery: np.ndarray) -> float:
    """One right candidate per query (row i of both): the share whose best cosine is it."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    return float(np.mean(np.argmax(q @ g.T, axis=1) == np.arange(len(q))))


def test_threshold_is_overridable(monkeypatch):
    monkeypatch.delenv(analysis_jobs.JOB_PAIRS_ENV, raising=False)
    assert analysis_jobs.job_pairs() == analysis_jobs.JOB_PAIRS
    assert not analysis_jobs.wants_job(5000, 25000)  # COCO val stays in-process
    assert analysis_jobs.wants_job(118_287, 591_435)  # COCO train goes to a job
    monkeypatch.setenv(analysis_jobs.JOB_PAIRS_ENV, "100")
    assert analysis_jobs.wants_job(11, 10) and not analysis_jobs.wants_job(10, 10)


def test_large_store_fills_results_from_the_gap_and_retrieval_jobs(
    make_store, no_catalog, monkeypatch
):
    path, X, Y = _pair_store(make_store)
    monkeypatch.setenv(analysis_jobs.JOB_PAIRS_ENV, "100")
    unit = [A / np.linalg.norm(A, axis=1, keepdims=True) for A in (X, Y)]
    l2m = float(np.linalg.norm(unit[0].mean(axis=0) - unit[1].mean(axis=0)))

    def not_here(*args, **kwargs):
        raise AssertionError("the TUI process analysed the store itself")

    # the TUI process may only read the jobs' cached results, never compute them itself
    monkeypatch.setattr("mgap.engine.studies.retrieval.retrieval_ranks", not_here)
    monkeypatch.setattr("mgap.engine.studies.gap.gap_metrics", not_here)
    monkeypatch.setattr("mgap.engine.studies.gap.category_breakdown", not_here)

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(100, 30)) as pilot:
            results = app.query_one("#results-pane")
            await settle(pilot, rounds=400)
            assert f"L2M {l2m:.4f}" in text(app, "#gap-summary")
            assert [row.name for row in results.categories][1:3] == ["even", "odd"]
            assert not app.query_one("#gap-progress").display
            assert list(results.projections) == [(results.current, "pca")]
            console = Console(width=100, record=True, file=io.StringIO())
            console.print(app.query_one("#retrieval").content)
            shown = console.export_text()
            assert "computing" not in text(app, "#results-status")
        return shown

    shown = asyncio.run(scenario())
    i2t, t2i = _recall_at_1(X, Y), _recall_at_1(Y, X)
    assert f"{i2t:.3f}" in shown and f"{t2i:.3f}" in shown
    for kind in analysis_jobs.KINDS:
        doc = read_progress(analysis_jobs.job_target(path, kind))
        assert doc["status"] == "complete"
        assert doc["cmdline"][2:5] == ["mgap", kind, str(path)]
        assert doc["pid"] != os.getpid()
    gap_doc = read_progress(analysis_jobs.job_target(path, "gap"))
    assert gap_doc["cmdline"][5:] == ["--by-category", "--no-separability", "--json"]
    gap_out = json.loads(analysis_jobs._suffixed(path, ".json", "gap").read_text())
    assert gap_out["l2m"] == pytest.approx(l2m, abs=1e-6)
    report = json.loads(analysis_jobs._suffixed(path, ".json").read_text())
    assert report["i2t"]["R@1"] == pytest.approx(i2t)
    assert (path.parent / (path.name + ".cache.h5")).exists()
    pids = {k: read_progress(analysis_jobs.job_target(path, k))["pid"] for k in analysis_jobs.KINDS}
    assert asyncio.run(scenario_cached(path)) == pids  # reopened: no second job of either


async def scenario_cached(path) -> dict[str, int]:
    app = MgapApp(path.parent, select=[path])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "R@1" in str(app.query_one("#retrieval").content.columns[1].header)
        assert [row.name for row in app.query_one("#results-pane").categories][1] == "even"
    return {k: read_progress(analysis_jobs.job_target(path, k))["pid"] for k in analysis_jobs.KINDS}


def _sleeping_job(monkeypatch) -> None:
    """A job that runs until signalled: an `mgap` script naming `retrieval` and the store."""
    monkeypatch.setattr(
        analysis_jobs,
        "retrieval_command",
        lambda store, sample: fake_command(store.parent, "retrieval", str(store)),
    )


def _wait_dead(pid: int) -> None:
    for _ in range(200):
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")


def test_jobs_lists_and_cancels_a_retrieval_job(make_store, monkeypatch):
    path, _, _ = _pair_store(make_store)
    _sleeping_job(monkeypatch)
    pid = analysis_jobs.launch(path, None)
    try:
        [row] = analysis_jobs.job_rows(path.parent)
        assert (row.name, row.status, row.pid, row.running) == (
            "big.h5 · retrieval",
            "running",
            pid,
            True,
        )
        assert analysis_jobs.is_job_file(row.key)
        assert row.key == str(analysis_jobs.progress_file(path))
        assert analysis_jobs.cancel(row.key)
        _wait_dead(pid)
        [row] = analysis_jobs.job_rows(path.parent)
        assert (row.status, row.running) == ("cancelled", False)
        assert not analysis_jobs.cancel(row.key)  # nothing left to signal
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)


def test_a_job_is_recorded_with_its_execd_command_line(make_store, monkeypatch):
    """Right after the fork /proc shows no command line yet (a loaded machine): the record
    must wait for the exec, or the identity check would call the running job dead."""
    path, _, _ = _pair_store(make_store)
    _sleeping_job(monkeypatch)
    real = analysis_jobs.command_line
    calls = []

    def not_yet(pid):
        calls.append(pid)
        return None if len(calls) <= 3 else real(pid)

    monkeypatch.setattr(analysis_jobs, "command_line", not_yet)
    pid = analysis_jobs.launch(path, None)
    try:
        doc = read_progress(analysis_jobs.job_target(path))
        assert len(calls) > 3
        assert doc["cmdline"] == analysis_jobs.retrieval_command(path.absolute(), None)
        assert analysis_jobs._alive(doc)
    finally:
        os.kill(pid, 9)
        _wait_dead(pid)


def test_cancel_refuses_a_pid_that_is_no_longer_the_job(make_store, monkeypatch):
    path, _, _ = _pair_store(make_store)
    _sleeping_job(monkeypatch)
    pid = analysis_jobs.launch(path, None)
    try:
        doc = read_progress(analysis_jobs.job_target(path))
        write_progress(analysis_jobs.job_target(path), proc_start=doc["proc_start"] + 1)
        assert not analysis_jobs.cancel(analysis_jobs.progress_file(path))
        assert pid_alive(pid)  # a reused pid is never signalled
    finally:
        os.kill(pid, 9)
        _wait_dead(pid)


def test_a_failed_job_is_one_error_naming_its_log(make_store, monkeypatch):
    path, _, _ = _pair_store(make_store)
    monkeypatch.setattr(
        analysis_jobs,
        "retrieval_command",
        lambda store, sample: fake_command(
            store.parent,
            "retrieval",
            str(store),
            body="import sys, time; time.sleep(0.5); sys.exit('mgap: error: out of memory')",
        ),
    )
    with pytest.raises(MgapError, match="ended without a result \\(mgap: error: out of memory"):
        analysis_jobs.retrieval_via_job(path, lambda: False)
    [row] = analysis_jobs.job_rows(path.parent)
    assert (row.status, row.running) == ("failed", False)


def test_the_scatter_reads_only_its_sampled_rows_in_sample_order(make_store):
    from mgap.engine.studies.projections import _read_points
    from mgap.store import open_store

    path, X, Y = _pair_store(make_store)
    store = open_store(path)
    both = np.concatenate([X, Y]).astype(np.float32)
    sample = np.random.default_rng(1).permutation(2 * N)[:17]  # images and captions mixed
    np.testing.assert_array_equal(_read_points(store, sample, False), both[sample])
    picked = store.embedding_subset("text", np.array([5, 1, 3]), np.float32)
    np.testing.assert_array_equal(picked, Y[[5, 1, 3]].astype(np.float32))


def test_the_jobs_pane_lists_a_retrieval_job_and_x_cancels_it(make_store, no_catalog, monkeypatch):
    from mgap.tui.pane_jobs import JobsPane

    path, _, _ = _pair_store(make_store)
    _sleeping_job(monkeypatch)
    pid = analysis_jobs.launch(path, None)

    async def scenario() -> None:
        app = MgapApp(path.parent)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("3")
            pane = app.query_one(JobsPane)
            for _ in range(300):
                await pilot.pause(0.02)
                if pane.rows:
                    break
            [row] = pane.rows
            assert (row.name, row.status, row.pid) == ("big.h5 · retrieval", "running", pid)
            pane.focus_default()
            await pilot.press("x")
            _wait_dead(pid)
            assert [n.message for n in app._notifications if n.title == "Jobs"] == [
                f"cancelled big.h5 · retrieval (pid {pid})"
            ]
            for _ in range(300):
                await pilot.pause(0.02)
                if pane.rows and pane.rows[0].status == "cancelled":
                    break
            assert (pane.rows[0].status, pane.rows[0].running) == ("cancelled", False)

    try:
        asyncio.run(scenario())
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)
