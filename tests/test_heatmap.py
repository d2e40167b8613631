"""Heatmaps: cell geometry, the colour blend, the ASCII ramp, the covered region, and PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mgap.engine.plots.heatmap import (
    ASCII_RAMP,
    IMAGE_WEIGHT,
    RAMP,
    covered_region,
    fit_cells,
    heat_colours,
    heatmap_pixels,
    render_heatmap,
    save_heatmap_png,
)


def test_cells_keep_the_aspect_with_half_block_pixels():
    assert fit_cells(1.0, 80, 10) == (20, 10)  # 20 columns × 20 half-rows: square
    assert fit_cells(2.0, 40, 20) == (40, 10)  # width-bound
    assert fit_cells(0.5, 80, 12) == (12, 12)


def test_centre_crop_region_and_full():
    image = Image.new("RGB", (60, 40))
    assert covered_region(image, "center").size == (40, 40)
    assert covered_region(image, "full").size == (60, 40)


def test_ramp_ends_and_blend():
    np.testing.assert_allclose(heat_colours(np.array([0.0, 1.0])), RAMP[[0, -1]])
    grey = Image.new("RGB", (8, 8), (100, 100, 100))
    flat = heatmap_pixels(grey, np.ones((2, 2)), (8, 8))  # uniform map: every pixel at max
    expected = np.round(IMAGE_WEIGHT * 100 + (1 - IMAGE_WEIGHT) * RAMP[-1])
    assert (flat == expected.astype(np.uint8)).all()


def test_ascii_ramp_marks_the_peak_where_it_is():
    attention = np.zeros((4, 4))
    attention[0, 3] = 1.0  # top right
    text = render_heatmap(None, attention, 8, 4, ascii=True).plain.splitlines()
    assert len(text) == 4 and all(len(line) == 8 for line in text)
    assert text[0][-1] == ASCII_RAMP[-1] and text[-1][0] == ASCII_RAMP[0]


def test_colour_cells_are_half_blocks_with_two_colours():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30, 3), np.uint8))
    text = render_heatmap(image, np.eye(3), 10, 5)
    assert text.plain.splitlines() == ["▀" * 10] * 5
    assert all(" on rgb(" in str(span.style) for span in text.spans)


def test_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    image = Image.new("RGB", (64, 48), (30, 60, 90))
    path = save_heatmap_png(image, np.eye(4), tmp_path / "h.png", coverage="center")
    with Image.open(path) as png:
        assert png.size[0] > 100 and png.size[1] > 100
