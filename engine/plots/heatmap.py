"""Attention heatmaps over the image, in the terminal and as PNG.

Public API (the CLI prints it; the TUI re-renders from `mgap attention --json` on resize):

- `heatmap_pixels(image, attention, size, coverage) -> (H, W, 3) uint8`: the image region
  the patch grid covers (the centre square for centre-cropping models, else all of it),
  downscaled to `size`, in grey, blended with the map (bilinear, scaled to its maximum)
  in a black-red-yellow-white ramp.
- `render_heatmap(image, attention, width, height, *, coverage, ascii=False) -> rich Text`:
  half-block cells (`▀`: top pixel in the foreground colour, bottom in the background), so
  each cell shows two square-ish pixels; with `ascii=True` (or no colour) a density ramp of
  the map alone, one character per cell.
- `save_heatmap_png(image, attention, path, *, coverage, title)`: matplotlib (`png` extra).

Only numpy, PIL and rich: no model code, so the TUI may import it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from rich.text import Text

from mgap.core.errors import MgapError, UsageError

#: anchor colours of the heat ramp, low to high
RAMP = np.array([[0, 0, 0], [120, 0, 20], [230, 60, 0], [255, 200, 0], [255, 255, 230]], float)
ASCII_RAMP = " .:-=+*#%@"
IMAGE_WEIGHT = 0.45


def covered_region(image: Image.Image, coverage: str) -> Image.Image:
    """The part of the image the patch grid describes."""
    if coverage != "center":
        return image
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB floats along RAMP."""
    x = np.clip(values, 0.0, 1.0) * (len(RAMP) - 1)
    low = np.floor(x).astype(int).clip(0, len(RAMP) - 2)
    frac = (x - low)[..., None]
    return RAMP[low] * (1 - frac) + RAMP[low + 1] * frac


def upsample(attention: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The map resized bilinearly to (width, height) pixels and scaled to max 1."""
    grid = np.asarray(attention, dtype=np.float32)
    resized = np.asarray(Image.fromarray(grid, mode="F").resize(size, Image.BILINEAR))
    top = float(resized.max())
    return resized / top if top > 0 else resized


def heatmap_pixels(
    image: Image.Image, attention: np.ndarray, size: tuple[int, int], coverage: str = "full"
) -> np.ndarray:
    region = covered_region(image.convert("RGB"), coverage).resize(size, Image.BILINEAR)
    grey = np.asarray(region.convert("L"), dtype=np.float64)[..., None].repeat(3, axis=2)
    heat = heat_colours(upsample(attention, size))
    return (IMAGE_WEIGHT * grey + (1 - IMAGE_WEIGHT) * heat).round().clip(0, 255).astype(np.uint8)


def fit_cells(aspect: float, width: int, height: int) -> tuple[int, int]:
    """Cells (columns, rows) that fit in width × height and keep `aspect` (w/h) with
    half-block pixels (one column wide, half a row tall: about square)."""
    columns = max(1, min(width, round(2 * height * aspect)))
    rows = max(1, min(height, round(columns / aspect / 2)))
    return columns, rows


def render_heatmap(
    image: Image.Image | None,
    attention: np.ndarray,
    width: int,
    height: int,
    *,
    coverage: str = "full",
    ascii: bool = False,
) -> Text:
    """The map over the image in at most width × height cells (see the module docstring)."""
    grid = np.asarray(attention, dtype=np.float64)
    if image is not None:
        region = covered_region(image, coverage)
        aspect = region.size[0] / region.size[1]
    else:
        aspect = grid.shape[1] / grid.shape[0]
    columns, rows = fit_cells(aspect, width, height)
    text = Text(no_wrap=True, overflow="crop")
    if ascii or image is None:
        levels = upsample(grid, (columns, rows))
        index = (levels * (len(ASCII_RAMP) - 1)).round().astype(int)
        text.append("\n".join("".join(ASCII_RAMP[i] for i in line) for line in index))
        return text
    pixels = heatmap_pixels(image, grid, (columns, 2 * rows), coverage)
    for r in range(rows):
        if r:
            text.append("\n")
        top, bottom = pixels[2 * r], pixels[2 * r + 1]
        for (tr, tg, tb), (br, bg, bb) in zip(top.tolist(), bottom.tolist(), strict=True):
            text.append("▀", style=f"rgb({tr},{tg},{tb}) on rgb({br},{bg},{bb})")
    return text


def save_heatmap_png(
    image: Image.Image,
    attention: np.ndarray,
    path: str | os.PathLike,
    *,
    coverage: str = "full",
    title: str = "",
    dpi: int = 100,
) -> Path:
    """The covered image region with the map over it (the RAMP colours, alpha 0.55)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("PNG heatmaps need matplotlib", hint="pip install 'mgap[png]'") from exc
    region = covered_region(image.convert("RGB"), coverage)
    grid = np.asarray(attention, dtype=np.float64)
    figure = Figure(figsize=(5, 5 * region.size[1] / region.size[0] + 0.4), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(region)
    cmap = ListedColormap(heat_colours(np.linspace(0, 1, 256)) / 255.0)
    axes.imshow(
        grid,
        cmap=cmap,
        alpha=0.55,
        interpolation="bilinear",
        extent=(0, region.size[0], region.size[1], 0),
    )
    axes.set_axis_off()
    axes.set_title(title or f"{grid.shape[0]}×{grid.shape[1]} patches", fontsize=9)
    path = Path(path)
    try:
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
    except OSError as exc:
        raise MgapError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
