"""Regression tests for the TUI's worker model and first screen (issue 16, bugs 1 and 2).

The busy state comes from the running workers: a CKA computation overtaken by a narrower
selection must not leave "computing cka…" on screen. Failures arrive as one message and
one notification. The first pane depends on what the store directory holds.
"""

from __future__ import annotations

import asyncio
import os
import threading

import h5py
import numpy as np
import pytest

pytest.importorskip("textual")

from tui_helpers import settle, text  # noqa: E402

from mgap.core.errors import StoreError  # noqa: E402
from mgap.tui.app import MgapApp  # noqa: E402
from mgap.tui.cka_view import HINT, CkaView  # noqa: E402


def _pair_store(make_store, name: str, seed: int) -> object:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 6))
    rows = np.arange(30)
    return make_store(
        name,
        X=X,
        Y=X + rng.normal(size=X.shape) * 0.3,
        image_ids=[f"img{i}" for i in range(30)],
        captions=[f"c{i}" for i in rows],
        caption_image_row=rows,
    )


@pytest.fixture
def slow_cka(monkeypatch):
    """CKA that blocks until released, so the test can change the selection meanwhile."""
    from mgap.tui import pane_results

    release = threading.Event()
    real = pane_results.compute_cka

    def blocked(paths):
        release.wait(30)
        return real(paths)

    monkeypatch.setattr(pane_results, "compute_cka", blocked)
    yield release
    release.set()


@pytest.mark.parametrize("narrowed", [1, 0])
def test_narrowing_the_selection_while_cka_runs_clears_computing_cka(
    make_store, no_catalog, slow_cka, narrowed
):
    a = _pair_store(make_store, "a.h5", 0)
    b = _pair_store(make_store, "b.h5", 1)

    async def scenario() -> None:
        app = MgapApp(a.parent, select=[a, b])
        async with app.run_test(size=(100, 30)) as pilot:
            results = app.query_one("#results-pane")
            await pilot.pause()
            assert "cka" in results.busy
            assert "computing" in text(app, "#results-status")
            results.set_stores([a, b][:narrowed])
            assert "cka" not in results.busy  # at once, before the thread even ends
            slow_cka.set()
            await settle(pilot)
            assert results.busy == set()
            assert "computing" not in text(app, "#results-status")
            cka = app.query_one(CkaView)
            assert cka.report is None and cka.hint == HINT  # the stale matrix is not drawn

    asyncio.run(scenario())


def test_a_failed_worker_gives_one_notification_and_no_stuck_status(
    make_store, no_catalog, monkeypatch
):
    path = _pair_store(make_store, "a.h5", 0)

    def broken(p, first):
        raise StoreError(f"{p.name} is broken", hint="re-extract it")

    monkeypatch.setattr("mgap.tui.pane_results.compute_gap", broken)

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert text(app, "#gap-summary") == "no gap: a.h5 is broken; re-extract it"
            failures = [n for n in app._notifications if n.title == "Results: gap"]
            assert [n.message for n in failures] == ["a.h5 is broken; re-extract it"]
            assert [n.severity for n in failures] == ["error"]
            assert app.query_one("#results-pane").busy == set()
            assert "computing" not in text(app, "#results-status")

    asyncio.run(scenario())


def test_an_empty_store_dir_opens_on_models(tmp_path, no_catalog):
    async def scenario() -> None:
        app = MgapApp(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.query_one("#panes").active == "models"
            assert app.focused.id == "models-table"

    asyncio.run(scenario())


def test_stores_open_on_the_most_recent_complete_store(make_store, no_catalog):
    paths = [_pair_store(make_store, f"{name}.h5", i) for i, name in enumerate("abcd")]
    with h5py.File(paths[3], "a") as f:  # d is the newest file but not complete
        f.attrs["status"] = "partial"
    for age, path in zip((300, 100, 200, 0), paths, strict=True):
        os.utime(path, (1e9 - age, 1e9 - age))

    async def scenario() -> None:
        app = MgapApp(paths[0].parent)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.query_one("#panes").active == "stores"
            table = app.query_one("#stores-table")
            assert app.focused is table
            assert table.get_row_at(table.cursor_row)[1] == "b.h5"

    asyncio.run(scenario())


def test_the_demo_selection_opens_results_on_the_trained_model(make_store, no_catalog):
    """`mgap demo` opens the TUI on `DemoRun.tui_selection`: Results shows the trained toy."""
    from mgap.engine.toy.config import TrainConfig
    from mgap.engine.toy.demo import DemoRun

    trained = _pair_store(make_store, "synthetic-test__toy-demo.h5", 0)
    twin = _pair_store(make_store, "synthetic-test__toy-demo-random.h5", 1)
    run = DemoRun("toy:demo", False, TrainConfig(), trained.parent, [trained, twin])

    async def scenario() -> None:
        app = MgapApp(trained.parent, select=run.tui_selection)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.query_one("#panes").active == "results"
            assert app.query_one("#results-pane").current == trained.resolve()
            assert text(app, "#results-title") == "synthetic-test__toy-demo.h5 (2/2)"
            assert app.focused.id == "category-table"

    asyncio.run(scenario())
