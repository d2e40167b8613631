"""Pilot tests of Results › Attention at 80×24: it reads the result `mgap attention` cached
beside the store (no model code in the TUI), ↑/↓ move through the images and the heatmap
follows; without a cached result it runs the command as a child process and shows its
one-line error."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

pytest.importorskip("textual")

from PIL import Image  # noqa: E402
from tui_helpers import settle  # noqa: E402
from tui_helpers import text as _text  # noqa: E402

from mgap.engine.attention.cache import save_attention  # noqa: E402
from mgap.engine.reports.studies import AttentionReport  # noqa: E402
from mgap.tui.app import MgapApp  # noqa: E402
from mgap.tui.view_attention import IMAGES, LAYER, SEED  # noqa: E402


def _row(path, name: str, grid: tuple[int, int], peak: tuple[int, int]) -> dict:
    attention = np.full(grid, 0.2)
    attention[peak] = 5.0
    attention /= attention.sum()
    p = attention.ravel()
    return {
        "id": name,
        "path": str(path),
        "category": "cat" if name == "a" else "dog",
        "grid": list(grid),
        "patches": p.size,
        "entropy": float(-(p * np.log(p)).sum()),
        "uniform_entropy": math.log(p.size),
        "map": attention.tolist(),
    }


@pytest.fixture
def cached_store(make_store, tmp_path):
    rng = np.random.default_rng(0)
    path = make_store("vilt.h5", X=rng.normal(size=(6, 4)), Y=rng.normal(size=(6, 4)))
    picture = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(picture)
    rows = [_row(picture, "a", (4, 6), (0, 0)), _row(picture, "b", (3, 3), (2, 2))]
    values = [r["entropy"] for r in rows]
    doc = {
        "store": str(path),
        "model": "toy",
        "dataset": None,
        "split": None,
        "status": "complete",
        "layer": 1,
        "n_layers": 2,
        "query": "image [CLS] token, empty text",
        "coverage": "full",
        "grid": None,
        "entropy": {"n": 2, "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))},
        "uniform_entropy": {"n": 2, "mean": (math.log(24) + math.log(9)) / 2},
        "entropy_definition": "H = -sum p log p",
        "sample": {"requested": IMAGES, "seed": SEED, "of": 6},
        "n_images": 2,
        "relative_entropy": {"n": 2},
        "by_category": {},
        "images": rows,
        "skipped": [],
    }
    assert save_attention(path, IMAGES, LAYER, SEED, AttentionReport.from_json(doc))
    return path, rows


def _to_attention(pilot):
    return pilot.press(
        "v", "v", "v", "v"
    )  # scatter -> metrics -> robustness -> groups -> attention


def test_attention_view_reads_the_cache_and_follows_the_keys(cached_store, no_catalog):
    path, rows = cached_store

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await _to_attention(pilot)
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "attention"
            table = app.query_one("#attention-table")
            assert table.row_count == 2 and app.focused is table
            status = _text(app, "#attention-status")
            assert f"{np.mean([r['entropy'] for r in rows]):.3f}" in status
            assert "per image" in status and "image [CLS]" in status
            heatmap = app.query_one("#attention-heatmap").content
            assert str(heatmap).startswith(f"a · cat · H {rows[0]['entropy']:.3f} of log n 3.178")
            assert "▀" in str(heatmap) and heatmap.spans  # coloured half blocks
            await pilot.press("down")
            assert _text(app, "#attention-heatmap").startswith(
                f"b · dog · H {rows[1]['entropy']:.3f} of log n {math.log(9):.3f}"
            )
            await pilot.press("v")
            assert app.query_one("#results-switcher").current == "scatter"

    asyncio.run(scenario())


def test_ascii_mode_draws_density_characters(cached_store, no_catalog):
    path, _ = cached_store

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path], ascii_only=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await _to_attention(pilot)
            await settle(pilot)
            heatmap = _text(app, "#attention-heatmap")
            assert "▀" not in heatmap and "@" in heatmap  # the peak cell

    asyncio.run(scenario())


def test_without_a_cached_result_the_command_runs_and_its_error_shows(make_store, no_catalog):
    rng = np.random.default_rng(0)
    path = make_store("plain.h5", X=rng.normal(size=(6, 4)), Y=rng.normal(size=(6, 4)))

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await _to_attention(pilot)
            await settle(pilot)
            status = _text(app, "#attention-status")
            assert status.startswith("no attention maps: plain.h5 records no image files")

    asyncio.run(scenario())
