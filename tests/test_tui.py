"""Pilot tests of the TUI: every pane driven by key presses at 80×24 (and larger).

Stores are built with `store_from_arrays`; the numbers the Results pane shows are
checked against a plain numpy computation of the docs/design.md §7 definitions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")

from job_helpers import fake_command, token_environment  # noqa: E402
from tui_helpers import settle  # noqa: E402
from tui_helpers import text as _text  # noqa: E402

from mgap.tui.app import MgapApp  # noqa: E402
from mgap.tui.cka_view import CkaView  # noqa: E402
from mgap.tui.help import HelpScreen  # noqa: E402
from mgap.tui.scatter import ScatterView  # noqa: E402

CATEGORIES = ["cat", "dog", "car"]
SUPER = ["animal", "animal", "vehicle"]


def _unit(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _l2m(X: np.ndarray, Y: np.ndarray) -> float:
    """‖mean x̂ − mean ŷ‖, written out independently of the engine."""
    return float(np.linalg.norm(_unit(X).mean(0) - _unit(Y).mean(0)))


def _arrays(seed: int, n: int = 45, d: int = 8):
    """Images with a category-dependent offset so every category has its own gap."""
    rng = np.random.default_rng(seed)
    primary = np.arange(n) % 3
    offset = np.array([0.2, 1.0, 2.5])[primary][:, None]
    X = rng.normal(size=(n, d)) + offset * np.eye(d)[0]
    rows = np.repeat(np.arange(n), 2)  # two captions per image
    Y = X[rows] + rng.normal(size=(2 * n, d)) * 0.5 + np.eye(d)[1] * 1.5
    return X, Y, rows, primary


def _store(make_store, name: str, seed: int = 0) -> Path:
    X, Y, rows, primary = _arrays(seed)
    return make_store(
        name,
        X=X,
        Y=Y,
        image_ids=[f"img{i}" for i in range(X.shape[0])],
        captions=[f"caption {j}" for j in range(Y.shape[0])],
        caption_image_row=rows,
        category_names=CATEGORIES,
        supercategories=SUPER,
        primary=primary,
        labels=np.eye(3, dtype=bool)[primary],
        prompts={"category": (CATEGORIES, np.random.default_rng(9).normal(size=(3, 8)))},
        provenance={"model": "test:model", "dataset": "synthetic", "split": "test"},
    )


async def _until(pilot, condition, timeout: float = 20.0) -> None:
    """Poll for a state an outside process brings about (jobs); workers use `settle`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the TUI did not reach the expected state in time")
        await pilot.pause(0.05)


def test_selecting_a_store_shows_its_gap_numbers(make_store, no_catalog):
    path = _store(make_store, "a.h5")
    X, Y, _, _ = _arrays(0)

    async def scenario() -> None:
        app = MgapApp(path.parent)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.query_one("#panes").active == "stores"  # the directory has a store
            assert app.query_one("#stores-table").row_count == 1
            await pilot.press("space", "enter")
            await settle(pilot)
            assert app.query_one("#panes").active == "results"
            summary = _text(app, "#gap-summary")
            assert f"L2M {_l2m(X, Y):.4f}" in summary
            assert "n 45 img · 90 txt · d 8" in summary

    asyncio.run(scenario())


def test_arrow_keys_move_through_categories(make_store, no_catalog):
    path = _store(make_store, "a.h5")
    X, Y, rows, primary = _arrays(0)

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.query_one("#category-table")
            await settle(pilot)
            assert table.row_count == 1 + 3 + 2
            assert app.focused is table
            seen = [_text(app, "#category-detail")]
            assert "all rows" in seen[0]
            for c, name in enumerate(CATEGORIES):
                await pilot.press("down")
                detail = _text(app, "#category-detail")
                assert f"{name} (category)" in detail
                expected = _l2m(X[primary == c], Y[primary[rows] == c])
                assert f"L2M {expected:.4f}" in detail
                assert app.query_one(ScatterView).highlight == name
                seen.append(detail)
            await pilot.press("down")
            assert "animal (supercategory)" in _text(app, "#category-detail")
            assert app.query_one(ScatterView).highlight is None
            assert len(set(seen)) == 4
            await pilot.press("up")
            assert "car (category)" in _text(app, "#category-detail")

    asyncio.run(scenario())


def _linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Kornblith et al. 2019 on column-centred X, Y: ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)."""
    X, Y = X - X.mean(0), Y - Y.mean(0)
    num = np.linalg.norm(Y.T @ X) ** 2
    return float(num / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def test_two_stores_give_a_cka_matrix_and_retrieval(make_store, no_catalog):
    a = _store(make_store, "a.h5", seed=0)
    b = _store(make_store, "b.h5", seed=1)
    Xa, Xb = _arrays(0)[0], _arrays(1)[0]

    async def scenario() -> None:
        app = MgapApp(a.parent, select=[a, b])
        async with app.run_test(size=(100, 30)) as pilot:
            results = app.query_one("#results-pane")
            await settle(pilot)
            assert results.busy == set()
            await pilot.press("v")
            assert app.query_one("#results-switcher").current == "metrics"
            report = app.query_one(CkaView).report
            assert report.names == ["a.h5:image", "b.h5:image"]
            assert report.matrix[0][0] == pytest.approx(1.0)
            assert report.matrix[0][1] == pytest.approx(_linear_cka(Xa, Xb), abs=1e-3)
            assert "R@1" in str(app.query_one("#retrieval").content.columns[1].header)
            await pilot.press("n")
            assert results.current == a.resolve()

    asyncio.run(scenario())


def test_an_image_only_store_explains_instead_of_crashing(make_store, no_catalog):
    path = make_store("img.h5", X=np.random.default_rng(0).normal(size=(20, 4)))

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            results = app.query_one("#results-pane")
            await settle(pilot)
            assert results.busy == set()
            assert _text(app, "#gap-summary").startswith("no gap: ")
            assert "image" in _text(app, "#gap-summary")
            await pilot.press("v")
            assert "needs both an image and a text side" in _text(app, "#retrieval")

    asyncio.run(scenario())


def test_models_pane_filters_and_picks(tmp_path, no_catalog):
    async def scenario() -> None:
        app = MgapApp(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            models = app.query_one("#models-pane")
            table = app.query_one("#models-table")
            await settle(pilot)
            assert table.row_count == 2
            await pilot.press("space")
            assert models.selected == ["toy:demo"]
            await pilot.press("slash", *"vit", "escape")
            assert table.row_count == 1
            assert app.focused is table
            await pilot.press("slash", "ctrl+a", "ctrl+k")
            await pilot.press(*"hf:some/local-model", "enter")
            assert models.selected == ["toy:demo", "hf:some/local-model"]
            await pilot.press("slash", "ctrl+a", "ctrl+k", *"st:", "enter")
            assert "st:" not in models.selected  # a bad spec is a notification, not a crash

    asyncio.run(scenario())


def test_datasets_pane_detects_roots_and_sets_split_and_limit(tmp_path, tiny_coco, no_catalog):
    async def scenario() -> None:
        app = MgapApp(tmp_path, roots=[("tiny", tiny_coco), ("nowhere", tmp_path / "missing")])
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            pane = app.query_one("#datasets-pane")
            await settle(pilot)
            assert pane.rows["tiny"].kind == "coco"
            assert pane.rows["tiny"].split == "train2017"
            assert pane.rows["nowhere"].error
            await pilot.press("down", "space", "l", "8", "enter")
            (choice,) = pane.choices()
            assert (choice.kind, choice.split, choice.limit, choice.root) == (
                "coco",
                "train2017",
                8,
                tiny_coco,
            )
            await pilot.press("up", "s", "space")
            assert [c.split for c in pane.choices()] == ["train2017", "train"]

    asyncio.run(scenario())


def test_tab_moves_between_panes_and_keymap_overrides(tmp_path, no_catalog):
    async def scenario() -> None:
        app = MgapApp(tmp_path, keymap={"pane.results": "f5", "quit": "ctrl+q"})
        async with app.run_test(size=(80, 24)) as pilot:
            tabs = app.query_one("#panes")
            await pilot.press("tab", "tab")
            assert tabs.active == "jobs"
            assert app.focused.id == "jobs-table"
            await pilot.press("shift+tab", "shift+tab", "shift+tab")
            assert tabs.active == "results"  # wraps around
            await pilot.press("1", "f5")
            assert tabs.active == "results"
            await pilot.press("q")
            assert app.is_running  # q was rebound to ctrl+q
            await pilot.press("ctrl+q")
        assert not app.is_running

    asyncio.run(scenario())


def test_help_screen_lists_bindings_per_pane(tmp_path, no_catalog):
    async def scenario() -> None:
        app = MgapApp(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            table = app.screen.query_one("#help-table").content
            ids = [str(cell) for cell in table.columns[2]._cells]
            for binding_id in ("quit", "results.method", "jobs.cancel", "stores.toggle"):
                assert binding_id in ids
            await pilot.press("tab")  # pane switching is off while help is open
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            assert app.query_one("#panes").active == "models"
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.resize_terminal(70, 20)  # resizing under the help screen is fine
            assert app.query_one("#too-small").display is True
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Extract", "Cancel job", "Go to Results", "Scatter: UMAP"} <= titles

    asyncio.run(scenario())


@pytest.mark.parametrize(("size", "small"), [((60, 20), True), ((80, 24), False)])
def test_too_small_terminal_notice(tmp_path, no_catalog, size, small):
    async def scenario() -> None:
        app = MgapApp(tmp_path)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            notice = app.query_one("#too-small")
            assert notice.display is small
            if small:
                assert "60×20" in str(notice.content) and "80×24" in str(notice.content)
            assert app.screen.has_class("-compact")

    asyncio.run(scenario())


FAKE_JOB = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from mgap.store.process import process_identity
    store = sys.argv[2]  # the TUI signals only an mgap job (this script is `mgap`) of this store
    state = {"status": "running"}
    def write(**fields):
        doc = {"pid": os.getpid(), "model": "toy:demo", "dataset": "synthetic", "split": "test",
               "store": store, "n_images": 1000, "device": "cpu", "phase": "images",
               "images_per_s": 12.5, "eta_s": 80.0, "updated": time.time(),
               **process_identity(), **fields}
        tmp = store + ".progress.json.tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, store + ".progress.json")
    def stop(signum, frame):
        write(status="cancelled", images_done=state.get("done", 0))
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    for done in range(0, 1000, 10):
        state["done"] = done
        write(status="running", images_done=done)
        time.sleep(0.2)
    """
)


def test_restarted_tui_reattaches_to_a_running_job_and_cancels_it(tmp_path, no_catalog):
    store = tmp_path / "synthetic-test__toy-demo.h5"
    job = subprocess.Popen(
        fake_command(tmp_path, "extract", str(store), body=FAKE_JOB),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        env=token_environment(),
    )
    try:
        progress = store.with_name(store.name + ".progress.json")
        deadline = time.monotonic() + 10
        while not progress.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        async def first_session() -> None:
            app = MgapApp(tmp_path)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("3")
                jobs = app.query_one("#jobs-pane")
                await _until(pilot, lambda: bool(jobs.rows))
                (row,) = jobs.rows
                assert (row.status, row.pid, row.running) == ("running", job.pid, True)
                await pilot.press("q")

        async def second_session() -> None:
            app = MgapApp(tmp_path)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("3")
                jobs = app.query_one("#jobs-pane")
                await _until(pilot, lambda: bool(jobs.rows))
                assert jobs.rows[0].running and jobs.rows[0].pid == job.pid
                cells = app.query_one("#jobs-table").get_row_at(0)
                assert cells[0] == store.name and cells[1] == "running"
                assert "%" in cells[2] and cells[3] == "12.5" and cells[5] == "cpu"
                await pilot.press("x")
                await _until(pilot, lambda: jobs.rows[0].status == "cancelled")
                assert not jobs.rows[0].running

        asyncio.run(first_session())
        assert job.poll() is None  # quitting the TUI left the job running
        asyncio.run(second_session())
        assert job.wait(timeout=10) == 0
    finally:
        if job.poll() is None:
            os.kill(job.pid, signal.SIGKILL)
            job.wait()


def test_x_refuses_in_one_line_a_pid_a_crafted_progress_file_names(tmp_path, no_catalog):
    """Issue 26 item 3: a progress file copying what /proc says of `bash ... extract` is no
    proof that the pid is an mgap job of the store: nothing is sent, one line says why."""
    from mgap.store.process import command_line, start_ticks
    from mgap.store.progress import write_progress

    store = tmp_path / "synthetic-test__toy-demo.h5"
    victim = subprocess.Popen(["bash", "-c", "sleep 300; true", "extract"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while (command_line(victim.pid) or [""])[-1] != "extract":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        write_progress(
            store, pid=victim.pid, status="running", store=str(store), n_images=10,
            cmdline=command_line(victim.pid), proc_start=start_ticks(victim.pid),
        )  # fmt: skip

        async def scenario() -> list[str]:
            app = MgapApp(tmp_path)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.press("3")
                jobs = app.query_one("#jobs-pane")
                await _until(pilot, lambda: bool(jobs.rows) and jobs.rows[0].running)
                await pilot.press("x")
                await pilot.pause(0.2)
                return [n.message for n in app._notifications if n.severity == "warning"]

        assert asyncio.run(scenario()) == [
            f"pid {victim.pid} is not provably the mgap job of {store.name} "
            "(it was not started by the TUI): nothing sent"
        ]
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.slow
def test_starting_a_job_from_the_tui_produces_a_store(tmp_path, no_catalog):
    """A real detached `mgap extract` (random-init open_clip, 8 synthetic images)."""
    from mgap.store import open_store

    spec = "open_clip:ViT-S-32-alt@random"
    store = tmp_path / "synthetic-test__open_clip-ViT-S-32-alt-random.h5"

    async def scenario() -> None:
        app = MgapApp(tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(pilot, lambda: app.query_one("#models-table").row_count == 2)
            await pilot.press("slash")
            app.query_one("#model-filter").value = spec
            await pilot.press("enter")
            assert app.query_one("#models-pane").selected == [spec]
            await pilot.press("2", "space", "l")
            await _until(pilot, lambda: app.focused.id == "dataset-limit")
            await pilot.press("8", "enter")
            await pilot.press("e")
            assert app.query_one("#panes").active == "jobs"
            jobs = app.query_one("#jobs-pane")
            (launched,) = jobs.launched
            assert os.getsid(launched.pid) == launched.pid
            finished = ("complete", "failed", "cancelled", "lost")
            await _until(pilot, lambda: any(r.status in finished for r in jobs.rows), 900)
            (row,) = jobs.rows
            assert row.status == "complete", f"the job ended {row.status}: {row.error}"
            await pilot.press("4")
            stores = app.query_one("#stores-pane")
            await _until(pilot, lambda: any(e.status == "complete" for e in stores.entries))

    asyncio.run(scenario())
    opened = open_store(store)
    assert (opened.status, opened.n_images, opened.model) == ("complete", 8, spec)
    assert store.with_name(store.name + ".log").read_text().startswith("$ ")
