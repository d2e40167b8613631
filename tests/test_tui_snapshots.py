"""Snapshots of every pane at 80×24 and 120×40, the help screen and the too-small notice.

pytest-textual-snapshot compares an SVG screenshot with the one accepted in
`tests/__snapshots__/`; after an intended change to the look, review the new pictures
and accept them with `pytest tests/test_tui_snapshots.py --snapshot-update`.
Each screenshot is taken once the workers are done (`settle`), not after a delay.
The store directory is given as a relative path, so no temporary path is on screen.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from tui_helpers import settle  # noqa: E402

from mgap.tui.app import MgapApp  # noqa: E402

SIZES = [(80, 24), (120, 40)]
PANES = {"models": "1", "datasets": "2", "jobs": "3", "stores": "4"}


@pytest.fixture
def stores(tmp_path, monkeypatch, make_store, no_catalog) -> list[Path]:
    """Two small stores with categories in ./stores, written at fixed times."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stores").mkdir()
    paths = []
    for i, name in enumerate(("a", "b")):
        rng = np.random.default_rng(i)
        primary = np.arange(40) % 4
        X = rng.normal(size=(40, 8)) + np.eye(8)[primary] * 2.0
        rows = np.repeat(np.arange(40), 2)
        path = make_store(
            f"stores/synthetic-test__toy-{name}.h5",
            X=X,
            Y=X[rows] + rng.normal(size=(80, 8)) * 0.5 + np.eye(8)[7],
            image_ids=[f"img{j}" for j in range(40)],
            captions=[f"caption {j}" for j in range(80)],
            caption_image_row=rows,
            category_names=["circle", "square", "star", "cross"],
            supercategories=["round", "angular", "angular", "angular"],
            primary=primary,
            labels=np.eye(4, dtype=bool)[primary],
            provenance={"model": f"toy:{name}", "dataset": "synthetic", "split": "test"},
        )
        os.utime(path, (1e9 + i, 1e9 + i))
        paths.append(Path("stores") / path.name)
    return paths


async def _settle(pilot) -> None:
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pane", list(PANES))
def test_pane(snap_compare, stores, pane, size):
    app = MgapApp(Path("stores"))
    assert snap_compare(app, press=[PANES[pane]], terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", ["scatter", "metrics"])
def test_results_pane(snap_compare, stores, view, size):
    """Results on both stores: the scatter, then (v) retrieval and the CKA matrix."""
    app = MgapApp(Path("stores"), select=stores)

    async def run_before(pilot) -> None:
        await settle(pilot)
        if view == "metrics":
            await pilot.press("v")
            await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_help_screen(snap_compare, stores):
    app = MgapApp(Path("stores"))

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_too_small_notice(snap_compare, stores):
    app = MgapApp(Path("stores"))
    assert snap_compare(app, terminal_size=(60, 20), run_before=_settle)
