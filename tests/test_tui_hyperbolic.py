"""Pilot test of Results › Hyperbolic at 80×24: Lorentz numbers and a traversal per image."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("textual")

from tui_helpers import settle  # noqa: E402
from tui_helpers import text as _text  # noqa: E402

from mgap.tui.app import MgapApp  # noqa: E402


def _lift(v, c):
    r = np.sqrt(c) * np.linalg.norm(v, axis=-1, keepdims=True)
    return np.sinh(r) / r * v


@pytest.fixture
def lorentz_store(make_store):
    """Images at depth 2 (and 3 for the last) on three axes, captions at depth 1.5 on the same
    axes: every image sits inside its caption's cone."""
    c = 1.0
    depths = np.array([2.0, 2.0, 3.0])
    X = _lift(depths[:, None] * np.eye(3), c)
    Y = _lift(1.5 * np.eye(3), c)
    return make_store(
        "hyp.h5",
        X=X,
        Y=Y,
        image_ids=["a", "b", "c"],
        captions=["along x", "along y", "along z"],
        provenance={"geometry": "lorentz", "curvature": c},
    )


def test_hyperbolic_view_shows_cones_and_follows_the_highlighted_image(lorentz_store, no_catalog):
    async def scenario() -> None:
        app = MgapApp(lorentz_store.parent, select=[lorentz_store])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("v", "v", "v", "v", "v")  # metrics robustness groups attention hyp
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "hyperbolic"
            summary = _text(app, "#hyperbolic-summary")
            assert "· lorentz_distance" in summary
            assert "in caption's cone 1.000" in summary
            table = app.query_one("#hyperbolic-table")
            assert table.row_count == 3 and app.focused is table
            first = _text(app, "#hyperbolic-traversal")
            assert first.startswith("traversal a → origin") and "[ROOT]" in first
            await pilot.press("down", "down")
            await settle(pilot)
            last = _text(app, "#hyperbolic-traversal")
            assert last.startswith("traversal c → origin")
            assert "1.00  3.000" in last and "along z" in last

    asyncio.run(scenario())


def test_euclidean_stores_skip_the_view_and_say_so_when_reached(
    lorentz_store, make_store, no_catalog
):
    flat = make_store("flat.h5", X=np.eye(3), Y=np.eye(3))

    async def scenario() -> None:
        app = MgapApp(flat.parent, select=[lorentz_store, flat])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            switcher = app.query_one("#results-switcher")
            await pilot.press("v", "v", "v", "v", "v")  # the Euclidean store: five views only
            await settle(pilot)
            assert switcher.current == "scatter"
            await pilot.press("n")  # -> the Lorentz store
            await settle(pilot)
            await pilot.press("v", "v", "v", "v", "v")
            await settle(pilot)
            assert switcher.current == "hyperbolic"
            await pilot.press("n")  # back to the Euclidean store while the view is shown
            await settle(pilot)
            assert "not a Lorentz store" in _text(app, "#hyperbolic-summary")

    asyncio.run(scenario())
