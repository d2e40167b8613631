"""Pilot tests of Results › Compare: four checkpoint stores selected, k opens the view, s sorts,
the arrows move, Enter opens the store in Results, and the scatter/trajectory is drawn."""

from __future__ import annotations

import asyncio

import h5py
import numpy as np
import pytest

pytest.importorskip("textual")

from tui_helpers import settle  # noqa: E402
from tui_helpers import text as _text  # noqa: E402

from mgap.tui.app import MgapApp  # noqa: E402
from mgap.tui.help import HelpScreen  # noqa: E402
from mgap.tui.view_compare import ComparePlot, CompareView  # noqa: E402

N, D = 30, 6
#: (model name, checkpoint step, noise): names and steps in different orders
ZOO = [("c-late", 3000, 0.2), ("a-first", 0, 1.2), ("d-mid", 1000, 0.8), ("b-two", 2000, 0.5)]


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.fixture
def zoo(make_store):
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(N, D))
    paths, l2m = [], {}
    for name, step, noise in ZOO:
        X = Z + noise * rng.normal(size=(N, D))
        Y = Z + noise * rng.normal(size=(N, D)) + noise
        path = make_store(
            f"{name}.h5", X=X, Y=Y, image_ids=[f"img{i}" for i in range(N)],
            provenance={"model": name, "dataset": "toy", "split": "val"},
        )  # fmt: skip
        with h5py.File(path, "a") as f:
            f.attrs["checkpoint_step"] = np.int64(step)
            f.attrs["logit_scale"] = np.float64(100.0 - step / 100)
        x, y = _unit(X.astype(np.float32).astype(float)), _unit(Y.astype(np.float32).astype(float))
        l2m[name] = float(np.linalg.norm(x.mean(0) - y.mean(0)))
        paths.append(path)
    return paths, l2m


def _models(view: CompareView) -> list[str]:
    return [r.model for r in view.rows]


def test_compare_view_sorts_moves_and_opens_results(zoo, no_catalog):
    paths, l2m = zoo

    async def scenario() -> None:
        app = MgapApp(paths[0].parent, select=paths)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("k")
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "compare"
            view = app.query_one(CompareView)
            table = app.query_one("#compare-table")
            assert table.row_count == 4 and app.focused is table
            assert _models(view) == [name for name, _, _ in ZOO]  # the selection's order
            for row in view.rows:
                assert row.l2m == pytest.approx(l2m[row.model], abs=1e-5)
            assert "4 stores on 30 shared ids" in _text(app, "#compare-status")
            # every store has a step: the trajectory is drawn first, t switches to the scatter
            assert view.trajectory and "gap against step" in _plot_text(app)
            await pilot.press("t")
            assert not view.trajectory and "against l2m" in _plot_text(app)
            await pilot.press("s")  # sort by model
            assert _models(view) == ["a-first", "b-two", "c-late", "d-mid"]
            await pilot.press("s", "s")  # n, then L2M
            assert [round(r.l2m, 9) for r in view.rows] == sorted(round(v, 9) for v in l2m.values())
            assert "sort: L2M" in _text(app, "#compare-status")
            await pilot.press("x")  # RMG on the x axis
            assert "against rmg" in _plot_text(app)
            await pilot.press("down", "down")
            assert table.cursor_row == 2 and f"▶{view.rows[2].model}" in _plot_text(app)
            await pilot.press("up")
            assert table.cursor_row == 1
            chosen = view.rows[1]
            await pilot.press("enter")
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "scatter"
            assert app.results.current.name == f"{chosen.model}.h5"
            assert _text(app, "#results-title").startswith(f"{chosen.model}.h5")

    asyncio.run(scenario())


def _plot_text(app) -> str:
    plot = app.query_one(ComparePlot)
    assert plot.draw is not None
    return plot.draw(100, 20)


def test_compare_view_without_selection_says_how(make_store, no_catalog):
    path = make_store("only.h5", X=np.eye(4), Y=np.eye(4))

    async def scenario() -> None:
        app = MgapApp(path.parent)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.action_pane("results")
            await pilot.press("k")
            await settle(pilot)
            assert "select stores" in _text(app, "#compare-status")
            assert app.query_one(CompareView).rows == []
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            table = app.screen.query_one("#help-table").content
            ids = [str(cell) for cell in table.columns[2]._cells]
            for binding_id in ("results.compare", "compare.sort", "compare.x", "compare.plot"):
                assert binding_id in ids

    asyncio.run(scenario())
