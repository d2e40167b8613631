"""Pilot tests of Results › Depth at 80×24: the gap across depth and the layers × layers heatmap.

The view's two reports come through `tui/depth_data.py`; here that seam hands back
reports built in the test from the store's own layer arrays (L2M and linear CKA computed
by brute force below), so the tests pin what the view shows and which REFs it asks for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")

from layer_stores import add_layers  # noqa: E402
from tui_helpers import settle  # noqa: E402
from tui_helpers import text as _text  # noqa: E402

from mgap.engine.reports.analysis import Compute, Estimate  # noqa: E402
from mgap.engine.reports.depth import DepthGapReport, DepthGapRow  # noqa: E402
from mgap.engine.reports.layer_matrix import LayerMatrixReport, LayerPair  # noqa: E402
from mgap.tui import depth_data  # noqa: E402
from mgap.tui.app import MgapApp  # noqa: E402
from mgap.tui.depth_heatmap import RAMP, heatmap_text, ramp_char  # noqa: E402
from mgap.tui.view_depth import cell_line  # noqa: E402

N, LAYERS = 12, 4


def _layer_arrays(seed: int = 0) -> tuple[dict, dict]:
    """(image, text) arrays per space and layer: raw widths 8 and 5, lens width 6."""
    rng = np.random.default_rng(seed)
    image = {"raw": {}, "lens": {}}
    text = {"raw": {}, "lens": {}}
    for k in range(LAYERS):
        image["raw"][k] = rng.normal(size=(N, 8))
        text["raw"][k] = rng.normal(size=(N, 5))
        image["lens"][k] = rng.normal(size=(N, 6)) + k
        text["lens"][k] = rng.normal(size=(N, 6))
    return image, text


@pytest.fixture
def layered(make_store):
    rng = np.random.default_rng(7)
    path = make_store(
        "deep.h5",
        X=rng.normal(size=(N, 6)),
        Y=rng.normal(size=(N, 6)),
        image_ids=[f"img{i}" for i in range(N)],
        captions=[f"caption {i}" for i in range(N)],
    )
    image, text = _layer_arrays()
    add_layers(path, {"image": image, "text": text})
    return path, image, text


def _cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Biased linear CKA from its definition (Kornblith et al. 2019)."""
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cross = np.linalg.norm(Y.T @ X) ** 2
    return float(cross / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def _gap_report(path, image, text) -> DepthGapReport:
    rows = []
    for k in range(LAYERS):
        X, Y = image["lens"][k], text["lens"][k]
        Xu = X / np.linalg.norm(X, axis=1, keepdims=True)
        Yu = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        l2m = float(np.linalg.norm(Xu.mean(0) - Yu.mean(0)))
        cos = float(np.mean(np.sum(Xu * Yu, axis=1)))
        rows.append(
            DepthGapRow.build(
                layer=k,
                dim=6,
                l2m=l2m,
                l2i=l2m,
                mean_paired_cosine=cos,
                intra_image_cosine=None,
                intra_text_cosine=None,
                rmg=l2m / 2,
                i2t_r1=None,
                t2i_r1=None,
            )  # fmt: skip
        )
    return DepthGapReport.build(
        store=str(path), model=None, dataset=None, split=None, status=None, space="lens",
        pooling={}, lens={}, n_images=N, n_texts=N,
        retrieval=Estimate.build(mode="exact", n=N),
        compute=Compute.build(device="cpu", engine="numpy", precision="float32"),
        layers=rows,
    )  # fmt: skip


def _matrix_report(ref_a, ref_b, image, text) -> LayerMatrixReport:
    M = [[_cka(image["raw"][i], text["raw"][j]) for j in range(LAYERS)] for i in range(LAYERS)]
    best = np.unravel_index(int(np.argmax(M)), (LAYERS, LAYERS))
    return LayerMatrixReport.build(
        measure="cka", names=[ref_a.split("@")[0], ref_b.split("@")[0]], space="raw", n=N,
        dims=[8, 5], rows=list(range(LAYERS)), columns=list(range(LAYERS)), matrix=M,
        estimator="biased", kernel="linear",
        best=LayerPair.build(row=int(best[0]), column=int(best[1]), value=M[best[0]][best[1]]),
        estimate=Estimate.build(mode="exact", n=N),
    )  # fmt: skip


@pytest.fixture
def seam(monkeypatch, layered):
    """The seam answers from the test's reports and records the REFs it was asked for."""
    path, image, text = layered
    asked = []

    def cka(ref_a, ref_b):
        asked.append((ref_a, ref_b))
        return _matrix_report(ref_a, ref_b, image, text)

    monkeypatch.setattr(depth_data, "depth_gap", lambda p: _gap_report(p, image, text))
    monkeypatch.setattr(depth_data, "depth_cka", cka)
    return asked


def _keys(app) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


def test_depth_view_draws_the_chart_and_the_heatmap_and_the_arrows_move(layered, seam, no_catalog):
    path, image, text = layered

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "depth" in _keys(app)  # shown in the footer: the store has layers
            await pilot.press("d")
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "depth"
            assert seam == [(f"{path}:image@all", f"{path}:text@all")]
            chart = app.query_one("#depth-chart")
            note = "gap across depth (lens, n=12) * L2M  + RMG  x paired cos"
            assert _text(app, "#depth-gap-note").strip() == note
            drawn = chart.render().plain  # what plotext drew: its lines and the layer ticks
            assert all(marker in drawn for marker in "*+x")
            *_, ticks, xlabel = drawn.rstrip().split("\n")
            assert ticks.split() == ["0", "1", "2", "3"] and xlabel.strip() == "layer"
            heatmap = app.query_one("#depth-heatmap")
            assert app.focused is heatmap
            M = [[_cka(image["raw"][i], text["raw"][j]) for j in range(4)] for i in range(4)]
            best = np.unravel_index(int(np.argmax(M)), (4, 4))
            assert heatmap.cursor == tuple(int(b) for b in best)
            await pilot.press("home")  # not bound: the cursor stays
            for key in ("up",) * 4 + ("left",) * 4 + ("down", "right", "right"):
                await pilot.press(key)
            assert heatmap.cursor == (1, 2)
            line = _text(app, "#depth-cell")
            assert line == f"image layer 1 × text layer 2 · CKA {M[1][2]:.3f}"
            await pilot.press("escape")
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "scatter"
            assert app.focused is app.query_one("#category-table")

    asyncio.run(scenario())


def test_a_store_without_layers_says_so_in_one_line(make_store, seam, no_catalog):
    flat = make_store("flat.h5", X=np.eye(3), Y=np.eye(3))

    async def scenario() -> None:
        app = MgapApp(flat.parent, select=[flat])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "depth" not in _keys(app)
            await pilot.press("d")
            await settle(pilot)
            assert app.query_one("#results-switcher").current == "scatter"
            warnings = [n.message for n in app._notifications if n.title == "Depth"]
            assert warnings == [
                "flat.h5 has no per-layer states: extract with --layers all for the Depth view"
            ]
            assert seam == []

    asyncio.run(scenario())


def test_two_stores_with_layers_compare_the_first_image_with_the_second_text():
    a, b = "a.h5", "b.h5"
    assert depth_data.cka_refs(a, ("image", "text"), b, ("image", "text")) == (
        "a.h5:image@all",
        "b.h5:text@all",
    )
    assert depth_data.cka_refs(a, ("image",), b, ("image",)) == ("a.h5:image@all", "b.h5:image@all")
    assert depth_data.cka_refs(a, ("text",), None, ()) == ("a.h5:text@all", "a.h5:text@all")


def test_plain_heatmap_shades_each_value_with_the_ramp_and_brackets_the_cursor():
    report = LayerMatrixReport.build(
        measure="cka", names=["s:image", "s:text"], space="raw", n=5, dims=[2, 2],
        rows=[0, 11], columns=[0, 5], matrix=[[0.0, 1.0], [0.5, None]], estimator="biased",
    )  # fmt: skip
    assert [ramp_char(v) for v in (0.0, 0.5, 1.0, -1.0, 2.0)] == [" ", "+", "@", " ", "@"]
    assert RAMP[0] == " " and RAMP[-1] == "@"
    lines = heatmap_text(report, (1, 0), plain=True).plain.split("\n")
    assert lines == ["      0  5", "  0     @ ", " 11 [+] ? "]


def test_depth_view_snapshot(snap_compare, layered, seam, no_catalog, monkeypatch):
    pytest.importorskip("pytest_textual_snapshot")
    path = layered[0]
    monkeypatch.chdir(path.parent)
    app = MgapApp(Path("."), select=[Path(path.name)])

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("down")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_cell_line_names_both_stores_and_the_interval_of_a_sampled_cell():
    report = LayerMatrixReport.build(
        measure="cka", names=["dir/dino.h5:image", "minilm.h5:text"], space="raw", n=9,
        dims=[4, 3], rows=[0, 4], columns=[2, 6], matrix=[[0.25, 0.5], [0.75, 0.125]],
        estimator="biased", kernel="linear",
        estimate=Estimate.build(
            mode="sampled", n=9, interval={"matrix": [[[0.2, 0.3], [0.4, 0.6]], [[0.7, 0.8], [0.1, 0.2]]]}
        ),
    )  # fmt: skip
    assert cell_line(report, 1, 0) == (
        "dino.h5:image layer 4 × minilm.h5:text layer 2 · CKA 0.750 [0.700, 0.800]"
    )


def test_the_seam_runs_both_studies_on_a_store_with_layers(layered):
    """The real studies behind the seam (skipped until `gap --layers` and `cka @all` exist)."""
    pytest.importorskip("mgap.engine.studies.gap_layers")
    pytest.importorskip("mgap.engine.studies.layer_align")
    path, image, text = layered
    assert depth_data.layer_sides(path) == ("image", "text")
    report = depth_data.depth_gap(path)
    assert [row.layer for row in report.layers] == list(range(LAYERS))
    for row in report.layers:
        X, Y = image["lens"][row.layer], text["lens"][row.layer]
        Xu = X / np.linalg.norm(X, axis=1, keepdims=True)
        Yu = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        assert row.l2m == pytest.approx(np.linalg.norm(Xu.mean(0) - Yu.mean(0)), abs=1e-5)
    same = depth_data.depth_cka(f"{path}:image@all", f"{path}:image@all")
    M = np.array(same.matrix)
    assert np.allclose(np.diag(M), 1.0, atol=1e-5) and np.allclose(M, M.T, atol=1e-6)


def test_ascii_depth_view_shades_with_characters_and_help_lists_the_key(layered, seam, no_catalog):
    path, image, text = layered

    async def scenario() -> None:
        app = MgapApp(path.parent, select=[path], ascii_only=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            ids = [b.id for b in app.results.help_bindings()]
            assert "results.depth" in ids and "results.back" not in ids
            await pilot.press("d")
            await settle(pilot)
            heatmap = app.query_one("#depth-heatmap")
            i, j = heatmap.cursor
            value = _cka(image["raw"][i], text["raw"][j])
            row = heatmap.render().plain.split("\n")[1 + i]
            assert row[4 + 3 * j : 7 + 3 * j] == f"[{ramp_char(value)}]"
            assert [b.id for b in app.results.help_bindings()][-1] == "results.back"

    asyncio.run(scenario())
