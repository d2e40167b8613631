"""Terminal scatter (binned vs plotext), PNG export and the `mgap plot` command."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import check_schema
from rich.console import Console

from mgap.core.errors import UsageError
from mgap.engine.measures.projections import Projection
from mgap.engine.plots import terminal as T
from mgap.engine.plots.palette import MODALITY_COLORS, color_groups, find_category


def _projection(rng, n=300, n_total=None, method="umap") -> Projection:
    half = n // 2
    coords = np.r_[rng.normal(size=(half, 2)), rng.normal(size=(n - half, 2)) + [3.0, 1.0]]
    category = rng.integers(-1, 4, size=half)
    return Projection(
        coords=coords.astype(np.float32),
        modality=np.r_[np.zeros(half, np.int8), np.ones(n - half, np.int8)],
        category=np.r_[category, category[: n - half]],
        image_index=np.r_[np.arange(half), np.arange(n - half)],
        category_names=["cat", "dog", "car", "bus"],
        n_shown=n,
        n_total=n_total or n,
        method=method,
        params={},
        seconds=0.0,
        cached=False,
        model="toy:test",
        dataset="synthetic",
    )


def _grid(proj, cols, rows, **kwargs):
    groups = color_groups(proj.modality, proj.category, proj.category_names, **kwargs)
    xlim, ylim = T.limits(proj.coords)
    return groups, T.scatter_grid(proj.coords, groups, cols, rows, xlim=xlim, ylim=ylim)


@pytest.mark.parametrize(("cols", "rows"), [(40, 12), (23, 7), (80, 20)])
def test_binned_renderer_marks_the_same_cells_and_dots_as_plotext(rng, cols, rows):
    proj = _projection(rng)
    _, grid = _grid(proj, cols, rows)
    reference = T.render_scatter_plotext(proj, cols, rows, bare=True)
    np.testing.assert_array_equal(T.occupied(reference), grid.marks > 0)
    lines = [line for line in reference.split("\n") if line]
    mine = ["".join(chr(0x2800 + int(b)) if b else " " for b in row) for row in grid.marks]
    assert lines == mine


def test_cell_colour_is_the_majority_group_and_highlight_wins(rng):
    # one cell: 3 captions and 1 image; another: 1 image; corners fix the limits
    coords = np.array(
        [[0, 0], [10, 10], [4.6, 4.6], [4.62, 4.6], [4.6, 4.62], [4.62, 4.62], [2, 8]]
    )
    proj = _projection(rng, n=7)
    proj.coords = coords.astype(np.float32)
    proj.modality = np.array([0, 0, 0, 1, 1, 1, 0], np.int8)
    proj.category = np.array([0, 0, 2, 1, 1, 1, 0])
    _, grid = _grid(proj, 11, 6)
    dx, dy = T.dot_positions(proj.coords, *T.limits(proj.coords), 11, 6, (2, 4))
    cell = (dy[2] // 4, dx[2] // 2)
    assert {(y // 4, x // 2) for x, y in zip(dx[2:6], dy[2:6], strict=True)} == {cell}
    assert grid.group[cell] == 1  # text: 3 of the 4 points there
    assert grid.group[dy[6] // 4, dx[6] // 2] == 0
    groups, lit = _grid(proj, 11, 6, highlight="CAR")  # case-insensitive name
    assert groups.names == ["other", "car"] and groups.top == 1
    assert lit.group[cell] == 1  # the lone highlighted point wins its cell
    assert lit.group[dy[6] // 4, dx[6] // 2] == 0


def test_pairs_draw_lines_beneath_the_points(rng):
    proj = _projection(rng, n=4)
    proj.coords = np.array([[0, 0], [0, 10], [10, 0], [10, 10]], np.float32)
    proj.modality = np.array([0, 0, 1, 1], np.int8)
    proj.image_index = np.array([0, 1, 0, 1])
    a, b = T.pair_segments(proj)
    np.testing.assert_array_equal(np.c_[a, b], [[0, 2], [1, 3]])
    groups = color_groups(proj.modality, proj.category, proj.category_names)
    xlim, ylim = T.limits(proj.coords)
    grid = T.scatter_grid(
        proj.coords, groups, 12, 5, xlim=xlim, ylim=ylim, segments=T.pair_segments(proj)
    )
    # two horizontal lines: top and bottom rows fully drawn, the points keep their colours
    assert (grid.marks[0] > 0).all() and (grid.marks[-1] > 0).all()
    assert (grid.group[0, 1:-1] == T.LINE).all()
    assert grid.group[0, 0] == 0 and grid.group[0, -1] == 1
    assert (grid.marks[1:-1] == 0).all()


def test_render_scatter_fills_the_canvas_with_axes_and_legend(rng):
    proj = _projection(rng, n_total=1000)
    text = T.render_scatter(proj, 80, 24, title=proj.title())
    lines = text.plain.split("\n")
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    assert lines[0] == "toy:test · synthetic · UMAP  (300 of 1,000 shown)"
    assert "UMAP-1" in lines[-2] and "└" in lines[-3]
    assert "image (150)" in lines[-1] and "text (150)" in lines[-1]
    # the plot area is exactly the binned grid
    groups = color_groups(proj.modality, proj.category, proj.category_names)
    layout = T.plot_size(proj, 80, 24, groups=groups, title=proj.title())
    _, grid = _grid(proj, layout.cols, layout.rows)
    for line, marks in zip(lines[1 : 1 + layout.rows], grid.marks, strict=True):
        expected = "".join(chr(0x2800 + int(b)) if b else " " for b in marks)
        assert line[layout.margin + 1 :] == expected
    styles = {str(span.style) for span in text.spans}
    assert set(MODALITY_COLORS) <= styles


def test_category_legend_ascii_and_no_color(rng):
    proj = _projection(rng)
    text = T.render_scatter(proj, 60, 16, color_by="category", ascii=True)
    assert all(ord(ch) < 128 for ch in text.plain)
    lines = text.plain.split("\n")
    # ASCII marks a, b, c, … by point count (ties keep the category order), then the rest
    counts = {name: int((proj.category == i).sum()) for i, name in enumerate(proj.category_names)}
    order = sorted(counts, key=lambda name: -counts[name])
    expected = "  ".join(
        f"{m} {name} ({counts[name]})" for m, name in zip("abcd", order, strict=True)
    )
    assert lines[-2] == expected
    assert lines[-1] == f"* no category ({int((proj.category < 0).sum())})"
    colour = Console(width=60, force_terminal=True, color_system="truecolor", no_color=False)
    plain = Console(width=60, force_terminal=True, color_system="truecolor", no_color=True)
    for console, has_colour in ((colour, True), (plain, False)):
        with console.capture() as captured:
            console.print(text)
        assert ("\x1b[38;2;" in captured.get()) is has_colour


def test_unknown_category_names_close_matches():
    with pytest.raises(UsageError, match="did you mean 'dog'"):
        find_category(["cat", "dog", "hot dog"], "dgo")
    assert find_category(["cat", "Dog"], "dog") == 1


def test_png_decodes_with_the_requested_size(rng, tmp_path):
    from PIL import Image

    from mgap.engine.plots.png import save_png

    proj = _projection(rng, n_total=600)
    out = save_png(proj, tmp_path / "f.png", size=(4, 3), dpi=50, pairs=True)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (200, 150)
    save_png(proj, tmp_path / "g.png", color_by="category", highlight="dog")
    with Image.open(tmp_path / "g.png") as image:
        assert image.size == (1200, 900)


def test_png_without_matplotlib_says_how_to_install(rng, tmp_path, monkeypatch):
    from mgap.engine.plots.png import save_png

    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(UsageError, match=r"mgap\[png\]"):
        save_png(_projection(rng), tmp_path / "f.png")


# ---- the command, in a subprocess on real files -----------------------------------------
@pytest.fixture
def category_store(make_store, rng):
    X = rng.normal(size=(60, 16)) + 2.0
    Y = X + rng.normal(size=(60, 16)) - 2.0
    primary = np.arange(60) % 3
    return make_store(
        "coco-val__toy.h5",
        X=X,
        Y=Y,
        category_names=["person", "dog", "pizza"],
        supercategories=["person", "animal", "food"],
        primary=primary,
        labels=np.eye(3, dtype=bool)[primary],
        provenance={"model": "toy:clip", "dataset": "coco", "split": "val"},
    )


def test_cli_plot_terminal_json_and_png(cli, category_store, tmp_path):
    done = cli(
        "plot",
        str(category_store),
        "--method",
        "pca",
        "--by-category",
        "--pairs",
        "--width",
        "80",
        "--height",
        "24",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.rstrip("\n").split("\n")
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    assert lines[0] == "toy:clip · coco val · PCA"
    assert "person (40)" in done.stdout and "pizza (40)" in done.stdout
    assert "\x1b[" not in done.stdout  # not a terminal: no escape codes

    done = cli("plot", str(category_store), "--method", "pca", "--max-points", "50", "--json")
    doc = json.loads(done.stdout)
    check_schema("plot", doc)
    assert (doc["method"], doc["n_shown"], doc["n_total"], doc["cached"]) == ("pca", 50, 120, False)
    assert (
        json.loads(
            cli(
                "plot", str(category_store), "--method", "pca", "--max-points", "50", "--json"
            ).stdout
        )["cached"]
        is True
    )

    png = tmp_path / "fig.png"
    done = cli(
        "plot", str(category_store), "--method", "pca", "--category", "dog", "--png", str(png)
    )
    assert done.returncode == 0 and done.stdout == "" and png.stat().st_size > 1000


def test_cli_plot_errors_are_one_line(cli, category_store, tmp_path):
    done = cli("plot", str(category_store), "--method", "pca", "--category", "dgo")
    assert done.returncode == 2 and "did you mean 'dog'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = cli("plot", str(category_store), "--method", "isomap")
    assert done.returncode == 2 and "unknown projection method" in done.stderr
    done = cli("plot", str(tmp_path / "missing.h5"))
    assert done.returncode == 1 and done.stderr.startswith("mgap: error:")
    assert "Traceback" not in done.stderr


def test_cli_plot_on_real_convirt_embeddings(cli, convirt_dir, tmp_path):
    from mgap.store.build import store_from_arrays

    features = np.load(convirt_dir / "features_convirt.npy")
    path = store_from_arrays(
        tmp_path / "convirt.h5",
        image_embeddings=features[0],
        text_embeddings=features[1],
        provenance={"model": "convirt", "dataset": "liang_convirt"},
    )
    done = cli("plot", str(path), "--method", "pca", "--width", "80", "--height", "20")
    assert done.returncode == 0, done.stderr
    assert "image (500)" in done.stdout and "text (500)" in done.stdout
    doc = json.loads(cli("plot", str(path), "--method", "pca", "--json").stdout)
    assert doc["n_total"] == 1000 and doc["cached"] is True
