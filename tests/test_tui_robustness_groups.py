"""Pilot tests of Results › Robustness and Results › Groups at 80×24, driven by keys."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("textual")

from tui_helpers import settle  # noqa: E402
from tui_helpers import text as _text  # noqa: E402

from mgap.tui.app import MgapApp  # noqa: E402

CATS = ["cat", "dog", "car"]


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.fixture
def store(make_store):
    rng = np.random.default_rng(4)
    n, d = 60, 8
    X = rng.normal(size=(n, d))
    Y = X + rng.normal(size=(n, d))
    primary = np.arange(n) % 3
    noisy = X + 3 * rng.normal(size=(n, d))
    path = make_store(
        "p.h5",
        X=X,
        Y=Y,
        category_names=CATS,
        supercategories=["animal", "animal", "vehicle"],
        primary=primary,
        labels=np.eye(3, dtype=bool)[primary],
        prompts={"category": (CATS, rng.normal(size=(3, d)))},
        perturbed={"noise:0.1": noisy, "occlude:0": X.copy()},
        dtype="float32",
    )
    return path, X.astype(np.float32), Y.astype(np.float32), noisy.astype(np.float32), primary


def test_robustness_and_groups_views_follow_the_keys(store, no_catalog):
    path, X, Y, noisy, primary = store
    noisy_l2m = np.linalg.norm(_unit(noisy.astype(float)).mean(0) - _unit(Y.astype(float)).mean(0))

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("v", "v")  # scatter -> metrics -> robustness
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "robustness"
            table = app.query_one("#robustness-table")
            assert table.row_count == 3 and app.focused is table
            assert _text(app, "#robustness-detail").startswith("clean")
            await pilot.press("down")
            detail = _text(app, "#robustness-detail")
            assert detail.startswith("noise:0.1") and f"{noisy_l2m:.3f}" in detail
            await pilot.press("down")
            assert _text(app, "#robustness-detail").startswith("occlude:0")
            await pilot.press("v")  # -> groups
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "groups"
            groups = app.query_one("#groups-table")
            assert groups.row_count == 3 and "grouping category (1/2)" in _text(
                app, "#groups-status"
            )
            await pilot.press("down")
            detail = _text(app, "#groups-detail")
            mask = primary == 0  # groups are sorted: car, cat, dog
            l2m = np.linalg.norm(
                _unit(X[mask].astype(float)).mean(0) - _unit(Y[mask].astype(float)).mean(0)
            )
            assert detail.startswith("category: cat") and f"L2M {l2m:.3f}" in detail
            assert "[" in detail  # the bootstrap interval
            await pilot.press("g")
            assert groups.row_count == 2 and "supercategory (2/2)" in _text(app, "#groups-status")
            await pilot.press("v", "v")  # -> attention -> scatter
            assert app.query_one("#results-switcher").current == "scatter"

    asyncio.run(scenario())


def test_a_store_without_perturbations_says_how_to_get_them(make_store, no_catalog):
    rng = np.random.default_rng(0)
    path = make_store("plain.h5", X=rng.normal(size=(10, 4)), Y=rng.normal(size=(10, 4)))

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("v", "v")
            await settle(pilot)
            assert "--perturb" in _text(app, "#robustness-status")
            await pilot.press("v")
            await settle(pilot)
            assert "no groupings" in _text(app, "#groups-status")

    asyncio.run(scenario())


def test_a_groups_csv_becomes_a_grouping_in_the_view(store, tmp_path, no_catalog):
    path, X, Y, _, _ = store
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "image_id,site\n" + "".join(f"{i},{'north' if i < 25 else 'south'}\n" for i in range(50))
    )

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path], group_files=[csv])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("v", "v", "v")  # -> groups
            await settle(pilot)
            await pilot.press("g", "g")  # category -> supercategory -> site
            status = _text(app, "#groups-status")
            assert "grouping site (3/3)" in status and "10/60 images not in meta.csv" in status
            table = app.query_one("#groups-table")
            assert table.row_count == 2
            north = _text(app, "#groups-detail")
            xn, yn = _unit(X[:25].astype(float)), _unit(Y[:25].astype(float))
            assert north.startswith("site: north  n=25")
            assert f"L2M {np.linalg.norm(xn.mean(0) - yn.mean(0)):.3f}" in north

    asyncio.run(scenario())
