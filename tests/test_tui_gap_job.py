"""The gap report as a cached `mgap gap` job (issue 11, items 5 and 6).

The CLI keeps its document in the store's sidecar cache and answers a repeat from it; in
the TUI (MGAP_TUI_JOB_PAIRS lowered so a 30-image store counts as large) the gap job's
cached summary shows first, its progress reaches the Results view and the Jobs pane, and
the retrieval job starts only once those first numbers are shown.
"""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest

pytest.importorskip("textual")

from job_helpers import fake_command  # noqa: E402
from tui_helpers import text, two_category_store  # noqa: E402

from mgap.store.progress import pid_alive, read_progress  # noqa: E402
from mgap.tui import analysis_jobs, gap_job  # noqa: E402
from mgap.tui.app import MgapApp  # noqa: E402


def _store(make_store, noise: float = 0.8):
    return two_category_store(make_store, seed=int(noise * 10), noise=noise)


def _l2m(X: np.ndarray, Y: np.ndarray) -> float:
    """Liang et al.: the norm of the difference of the means of the unit rows."""
    x = X / np.linalg.norm(X, axis=1, keepdims=True)
    y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return float(np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)))


def test_a_repeated_gap_answers_from_the_cache(make_store, cli, monkeypatch):
    path, X, Y = _store(make_store)
    first = cli("gap", str(path), "--by-category", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert "cached" not in doc and doc["l2m"] == pytest.approx(_l2m(X, Y), abs=1e-6)
    again = json.loads(cli("gap", str(path), "--by-category", "--json").stdout)
    assert again.pop("cached") is True
    assert again == doc
    # the by-category run kept its summary: a plain `mgap gap` with those options is cached
    plain = json.loads(cli("gap", str(path), "--json").stdout)
    assert plain.pop("cached") is True and "by_category" not in plain
    assert {k: plain[k] for k in ("l2m", "rmg", "separability")} == {
        k: doc[k] for k in ("l2m", "rmg", "separability")
    }
    other = json.loads(cli("gap", str(path), "--json", "--top-k", "2").stdout)
    assert "cached" not in other and len(other["top_dims"]) == 2  # other options: computed

    # a cache hit reads no embeddings
    from mgap.engine.studies.gap import gap_report
    from mgap.store import open_store

    def no_rows(*args, **kwargs):
        raise AssertionError("the embeddings were read")

    monkeypatch.setattr("mgap.engine.studies.pairs.store_pairs", no_rows)
    hit = gap_report(open_store(path), by_category=True).to_json()
    assert hit["cached"] is True and hit["l2m"] == doc["l2m"]


def test_a_rewritten_store_is_not_answered_from_the_old_cache(make_store, cli):
    path, _, _ = _store(make_store, noise=0.8)
    assert cli("gap", str(path), "--json").returncode == 0
    path.unlink()  # its sidecar cache stays
    path, X, Y = _store(make_store, noise=0.3)  # same name, same counts, other rows
    doc = json.loads(cli("gap", str(path), "--json").stdout)
    assert "cached" not in doc and doc["l2m"] == pytest.approx(_l2m(X, Y), abs=1e-6)


def _sleepers(monkeypatch) -> None:
    """Jobs that run until killed; their command lines still name their analysis."""

    def sleeper(kind: str, store) -> list[str]:
        return fake_command(store.parent, kind, str(store))

    monkeypatch.setattr(gap_job, "gap_command", lambda store, by_category: sleeper("gap", store))
    monkeypatch.setattr(
        analysis_jobs, "retrieval_command", lambda store, s: sleeper("retrieval", store)
    )


def _kill_jobs(path) -> None:
    for kind in analysis_jobs.KINDS:
        doc = read_progress(analysis_jobs.job_target(path, kind))
        if doc and pid_alive(doc["pid"]):
            os.kill(doc["pid"], 9)


async def _until(pilot, condition, rounds: int = 400) -> None:
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not met in time")


def test_the_gap_jobs_summary_and_progress_show_while_it_runs(
    make_store, cli, no_catalog, monkeypatch
):
    path, X, Y = _store(make_store)
    # the summary the job keeps first: `mgap gap --no-separability` writes the same entry
    assert cli("gap", str(path), "--no-separability", "--json").returncode == 0
    monkeypatch.setenv(analysis_jobs.JOB_PAIRS_ENV, "100")
    _sleepers(monkeypatch)
    work = {"label": "category mean-pairwise table", "done": 12, "total": 30, "eta_s": 65}

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(100, 30)) as pilot:
            gap_target = analysis_jobs.job_target(path, "gap")
            await _until(pilot, lambda: read_progress(gap_target) is not None)
            pid = read_progress(gap_target)["pid"]
            assert pid != os.getpid()
            analysis_jobs.work_file(path, "gap").write_text(json.dumps(work))
            await _until(pilot, lambda: app.query_one("#gap-progress").display)
            await _until(pilot, lambda: "40%" in text(app, "#gap-progress"))
            assert f"L2M {_l2m(X, Y):.4f}" in text(app, "#gap-summary")
            assert [row.name for row in app.query_one("#results-pane").categories] == ["(all)"]
            assert text(app, "#gap-progress") == (
                f"table: category mean-pairwise table ████░░░░░░  40% · ETA 1m05s · job pid {pid}"
            )
            # the first numbers are shown, so the retrieval job has started
            retrieval = analysis_jobs.job_target(path, "retrieval")
            await _until(pilot, lambda: read_progress(retrieval) is not None)
            r_pid = read_progress(retrieval)["pid"]
            await _until(pilot, lambda: "job pid" in text(app, "#retrieval"))
            assert text(app, "#retrieval") == f"retrieval: starting · job pid {r_pid}"
            await pilot.press("3")
            pane = app.query_one("JobsPane")
            await _until(pilot, lambda: any(r.name == "big.h5 · gap" for r in pane.rows))
            row = next(r for r in pane.rows if r.name == "big.h5 · gap")
            cells = pane._cells(row)
            assert (cells[1], cells[2], cells[4], cells[6]) == (
                "running",
                "████░░░░░░  40%",
                "1m05s",
                str(pid),
            )

    try:
        asyncio.run(scenario())
    finally:
        _kill_jobs(path)


def test_retrieval_waits_for_the_gaps_first_numbers(make_store, no_catalog, monkeypatch):
    path, _, _ = _store(make_store)
    monkeypatch.setenv(analysis_jobs.JOB_PAIRS_ENV, "100")
    _sleepers(monkeypatch)

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(pilot, lambda: "job pid" in text(app, "#gap-summary"))
            pid = read_progress(analysis_jobs.job_target(path, "gap"))["pid"]
            assert text(app, "#gap-summary") == f"gap: starting · job pid {pid}"
            for _ in range(50):  # a second of polls: the retrieval job must not start
                await pilot.pause(0.02)
            assert read_progress(analysis_jobs.job_target(path, "retrieval")) is None
            assert text(app, "#retrieval") == "retrieval: computing…"

    try:
        asyncio.run(scenario())
    finally:
        _kill_jobs(path)
