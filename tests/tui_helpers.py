"""Helpers for the TUI tests: deterministic waits, and the small paired store they open.

Deterministic waits for Pilot tests: wait on the TUI's workers, not on a clock.

`settle` waits until no worker is pending or running and the messages they returned have
been handled (a handler may start the next worker, so it loops until quiet), like
harlequin's functional tests' `wait_for_workers`.
"""

from __future__ import annotations

import asyncio

import numpy as np
from textual.widgets import DataTable
from textual.worker import WorkerState

ACTIVE = (WorkerState.PENDING, WorkerState.RUNNING)


async def settle(pilot, rounds: int = 50) -> None:
    """Return once the app has no active worker after its pending messages were handled."""
    app = pilot.app
    for _ in range(rounds):
        await pilot.pause()
        active = [w for w in app.workers if w.state in ACTIVE]
        if not active:
            await pilot.pause()
            if not any(w.state in ACTIVE for w in app.workers):
                await _tables_measured(pilot)
                return
            continue
        await asyncio.gather(*(w.wait() for w in active), return_exceptions=True)
    raise AssertionError(f"workers still running after {rounds} rounds: {list(app.workers)}")


async def _tables_measured(pilot, rounds: int = 50) -> None:
    """DataTable measures new rows' column widths when its queue goes idle: wait for that,
    so a screenshot never shows the header-wide columns of the moment before."""
    for _ in range(rounds):
        pending = [
            table
            for table in pilot.app.screen.query(DataTable)
            if table._require_update_dimensions or table._updated_cells
        ]
        if not pending:
            await pilot.pause()
            return
        await pilot.pause()
    raise AssertionError("a DataTable kept re-measuring its columns")


def text(app, selector: str) -> str:
    """The plain text a Static shows."""
    return str(app.query_one(selector).content)


def two_category_store(make_store, name: str = "big.h5", *, seed: int = 3, noise: float = 0.8):
    """(path, X, Y): 30 paired rows in two categories (even, odd), for the jobs tests."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 6))
    Y = X + rng.normal(size=X.shape) * noise
    rows = np.arange(30)
    primary = rows % 2
    path = make_store(
        name,
        X=X,
        Y=Y,
        image_ids=[f"img{i}" for i in rows],
        captions=[f"c{i}" for i in rows],
        caption_image_row=rows,
        category_names=["even", "odd"],
        supercategories=["number", "number"],
        primary=primary,
        labels=np.eye(2, dtype=bool)[primary],
    )
    return path, X, Y
