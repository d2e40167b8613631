"""The examples drill-down: Enter on a category opens its images worst first, arrows move,
`s` sorts, Escape returns; the picture is drawn in half blocks (deterministic, so the
snapshots at 80×24 and 120×40 compare), and a store whose files are gone says so in one line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("textual")

from PIL import Image  # noqa: E402
from textual_image.renderable import HalfcellImage  # noqa: E402
from tui_helpers import settle, text  # noqa: E402

from mgap.tui.app import MgapApp  # noqa: E402
from mgap.tui.picture import Picture  # noqa: E402
from mgap.tui.view_examples import ExamplesScreen  # noqa: E402

CATEGORIES = ["circle", "square", "star"]
COLOURS = [(220, 40, 40), (40, 180, 60), (40, 80, 220)]


@pytest.fixture(autouse=True)
def _half_blocks(monkeypatch):
    for name in ("NO_COLOR", "TMUX"):
        monkeypatch.delenv(name, raising=False)


def picture_store(make_store, root: Path, name: str = "stores/pics.h5") -> Path:
    """12 images in three categories, two captions each, with a small PNG per image."""
    rng = np.random.default_rng(5)
    primary = np.arange(12) % 3
    X = rng.normal(size=(12, 8)) + np.eye(8)[primary] * 2.0
    rows = np.repeat(np.arange(12), 2)
    Y = X[rows] + rng.normal(size=(24, 8)) * 0.7
    (root.parent / "stores").mkdir(exist_ok=True)
    path = make_store(
        name,
        X=X,
        Y=Y,
        image_ids=[f"img{i}" for i in range(12)],
        captions=[f"a {CATEGORIES[primary[r]]} number {j}" for j, r in enumerate(rows)],
        caption_image_row=rows,
        category_names=CATEGORIES,
        primary=primary,
        labels=np.eye(3, dtype=bool)[primary],
        provenance={"model": "toy:pics", "dataset": "synthetic", "split": "test"},
    )
    root.mkdir(exist_ok=True)
    for i in range(12):
        img = Image.new("RGB", (32, 24), COLOURS[primary[i]])
        img.paste((255, 255, 255), (4 * (i % 6), 4, 4 * (i % 6) + 8, 12))
        img.save(root / f"img{i}.png")
    with h5py.File(path, "r+") as f:
        f["images/paths"][...] = [f"img{i}.png".encode() for i in range(12)]
        f.attrs["data_root"] = str(root)
    return path


@pytest.fixture
def store(tmp_path, make_store, no_catalog, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return picture_store(make_store, tmp_path / "data")


def _open(path: Path, presses: list[str], check) -> None:
    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            for key in presses:
                await pilot.press(key)
            await settle(pilot)
            await check(app, pilot)

    asyncio.run(scenario())


def test_enter_opens_the_category_arrows_move_escape_returns(store):
    async def check(app, pilot) -> None:
        screen = app.screen
        assert isinstance(screen, ExamplesScreen) and screen.category == "circle"
        table = screen.query_one("#examples-list")
        assert table.row_count == 4  # images 0, 3, 6, 9
        pairs = [float(table.get_row_at(i)[1]) for i in range(4)]
        assert pairs == sorted(pairs)  # worst (lowest pair cosine) first
        assert screen.query_one(Picture) is not None
        first = text(screen, "#example-text")
        assert "retrieved" in first and ("✓" in first or "✗" in first)
        assert isinstance(screen.query_one("#picture-cells").render(), HalfcellImage)
        scatter = screen.query_one("#examples-scatter")
        shown = scatter.projection
        linked = shown.image_index[(shown.modality == 1) & (shown.image_index >= 0)]
        assert scatter.highlight == "circle"
        assert set(linked.tolist()) == {screen.report.examples[0].row}  # its two captions
        assert linked.size == 2
        await pilot.press("down")
        await settle(pilot)
        assert table.cursor_row == 1
        second = text(screen, "#example-text")
        assert second != first and screen.report.examples[1].id in second
        await pilot.press("s")
        await settle(pilot)
        assert screen.sort == "rank" and "worst by rank" in text(screen, "#examples-title")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ExamplesScreen)
        assert app.focused is app.query_one("#category-table")

    _open(store, ["down", "enter"], check)


def test_all_row_opens_every_image(store):
    async def check(app, pilot) -> None:
        assert app.screen.category == "(all)"
        assert app.screen.query_one("#examples-list").row_count == 12

    _open(store, ["enter"], check)


def test_a_toggles_the_cached_attention_map(store):
    from mgap.engine.attention.cache import save_attention
    from mgap.engine.reports.studies import AttentionReport
    from mgap.tui.view_attention import IMAGES, LAYER, SEED

    grid = [[0.0, 1.0], [0.0, 0.0]]
    images = [
        {
            "id": f"img{i}",
            "path": f"img{i}.png",
            "category": "circle",
            "grid": [2, 2],
            "patches": 4,
            "entropy": 0.0,
            "uniform_entropy": float(np.log(4)),
            "map": grid,
        }
        for i in range(12)
    ]
    doc = {
        "store": str(store),
        "model": "toy",
        "dataset": None,
        "split": None,
        "status": "complete",
        "layer": LAYER,
        "n_layers": 2,
        "query": "image [CLS] token",
        "coverage": "full",
        "grid": None,
        "entropy": {"n": 12, "mean": 0.0, "std": 0.0},
        "uniform_entropy": {"n": 12, "mean": float(np.log(4))},
        "entropy_definition": "H = -sum p log p",
        "sample": {"requested": IMAGES, "seed": SEED, "of": 12},
        "n_images": 12,
        "relative_entropy": {"n": 12},
        "by_category": {},
        "images": images,
        "skipped": [],
    }
    assert save_attention(store, IMAGES, LAYER, SEED, AttentionReport.from_json(doc))

    async def check(app, pilot) -> None:
        picture = app.screen.query_one(Picture)
        plain = picture.image.copy()
        await pilot.press("a")
        await settle(pilot)
        assert app.screen.show_attention
        over, (w, h) = picture.image, plain.size
        assert over.getpixel((w - 1, 0))[1] < plain.getpixel((w - 1, 0))[1]  # hot: reddened
        assert over.getpixel((0, h - 1)) == plain.getpixel((0, h - 1))  # cold: as it was
        await pilot.press("a")
        await settle(pilot)
        assert picture.image.tobytes() == plain.tobytes()

    _open(store, ["down", "enter"], check)


def test_no_color_draws_characters(monkeypatch):
    from mgap.tui.picture import ascii_text, picture_mode

    monkeypatch.setenv("NO_COLOR", "1")
    assert picture_mode() == "ascii" and picture_mode(ascii_only=True) == "ascii"
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    img.paste((255, 255, 255), (10, 0, 20, 10))
    assert str(ascii_text(img, 20, 5)).splitlines()[0] == " " * 10 + "@" * 10


def test_files_gone_show_one_line(store):
    with h5py.File(store, "r+") as f:
        f.attrs["data_root"] = str(store.parent / "moved-away")

    async def check(app, pilot) -> None:
        notice = app.screen.query_one(Picture).notice
        assert notice.startswith("image not reachable:") and "\n" not in notice
        drawn = app.screen.query_one("#picture-cells").render()
        assert str(drawn) == notice and drawn.no_wrap

    _open(store, ["enter"], check)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_examples_snapshot(snap_compare, store, size):
    pytest.importorskip("pytest_textual_snapshot")
    app = MgapApp(Path("stores"), select=[Path("stores") / store.name])

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_arrows_only_redraw_the_top5_the_list_fetched(store, monkeypatch):
    """The top-5 of every listed image comes with the list (one pass, then the cache):
    moving through the list passes over the captions no more."""
    import mgap.engine.studies.examples as study

    async def check(app, pilot) -> None:
        screen = app.screen
        assert sorted(screen.retrieved) == sorted(e.row for e in screen.report.examples)
        assert all(len(e.retrieved) == 5 for e in screen.retrieved.values())

        def no_pass(*args, **kwargs):
            raise AssertionError("an arrow press scanned the captions")

        monkeypatch.setattr(study.ex, "scan_gallery", no_pass)
        for i in (1, 2, 3):
            await pilot.press("down")
            await settle(pilot)
            shown = text(screen, "#example-text")
            ex = screen.retrieved[screen.report.examples[i].row]
            assert ex.id in shown and shown.count("✓") + shown.count("✗") == 5
        assert "scanned" not in text(screen, "#examples-title")

    _open(store, ["down", "enter"], check)
