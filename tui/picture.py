"""A store image drawn in the terminal: Kitty/Sixel graphics, half-block cells, or ASCII.

`textual-image` asks the terminal for Sixel and Kitty graphics support once, when it is
imported (before the app starts: it cannot ask afterwards), and leaves its answer in
`textual_image.renderable.Image`. A terminal that says it is Kitty (TERM=xterm-kitty or
KITTY_WINDOW_ID) gets the Kitty renderer even when that query went unanswered (a slow
SSH link); Sixel is used where the query found it. Half blocks are used inside tmux and
screen (which pass no graphics through by default) and wherever no protocol was found;
`--ascii` and NO_COLOR give plain characters. Half blocks are sized here, in cells, so a
drawing is the same on every terminal (the snapshot tests rely on it). A missing file
gives a one-line notice, never an exception (docs/design.md §5: stores outlive their
dataset folders).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import textual_image.renderable as detection
import textual_image.widget as graphics_widgets
from PIL import Image as PILImage
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widget import Widget
from textual_image.renderable import HalfcellImage, SixelImage, TGPImage

#: characters from dark to light for the ASCII drawing
RAMP = " .:-=+*#%@"
#: the graphics modes, each with textual-image's renderable and widget
RENDERABLES = {"kitty": TGPImage, "sixel": SixelImage}
WIDGETS = {"kitty": graphics_widgets.TGPImage, "sixel": graphics_widgets.SixelImage}


def _in_multiplexer(env: Mapping[str, str]) -> bool:
    return bool(env.get("TMUX")) or env.get("TERM", "").startswith(("tmux", "screen"))


def picture_mode(ascii_only: bool = False, env: Mapping[str, str] | None = None) -> str:
    """How to draw here: "ascii", "halfcell", "kitty" or "sixel"."""
    env = os.environ if env is None else env
    if ascii_only or env.get("NO_COLOR"):
        return "ascii"
    if _in_multiplexer(env):
        return "halfcell"
    if env.get("TERM") == "xterm-kitty" or env.get("KITTY_WINDOW_ID"):
        return "kitty"
    found = detection.Image  # what textual-image's terminal query found at import
    return next((mode for mode, cls in RENDERABLES.items() if found is cls), "halfcell")


def load_picture(root: str | None, path: str | None) -> tuple[PILImage.Image | None, str]:
    """(RGB image, "") or (None, the one-line reason it cannot be shown)."""
    if not path:
        return None, "no image file recorded for this example"
    full = Path(root).expanduser() / path if root else Path(path)
    try:
        with PILImage.open(full) as img:
            return img.convert("RGB"), ""
    except (OSError, ValueError) as exc:
        return None, f"image not reachable: {full} ({type(exc).__name__}); pass --data-root"


def fit_cells(width: int, height: int, max_cols: int, max_rows: int) -> tuple[int, int]:
    """Cells for a width x height image inside max_cols x max_rows, aspect kept (a cell is
    one pixel wide and two tall in half blocks)."""
    scale = min(max_cols / max(width, 1), 2 * max_rows / max(height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale / 2))


def with_attention(img: PILImage.Image, heat: np.ndarray) -> PILImage.Image:
    """The image with an attention grid laid over it in red (brighter = more attention)."""
    grid = np.asarray(heat, dtype=np.float64)
    span = grid.max() - grid.min()
    grid = (grid - grid.min()) / span if span > 0 else np.zeros_like(grid)
    mask = PILImage.fromarray(np.uint8(grid * 255)).resize(img.size, PILImage.BILINEAR)
    red = PILImage.new("RGB", img.size, (255, 0, 0))
    return PILImage.composite(red, img, mask.point(lambda v: int(v * 0.6)))


def ascii_text(img: PILImage.Image, cols: int, rows: int) -> Text:
    """The image as RAMP characters, one per cell."""
    w, h = fit_cells(img.width, img.height, cols, rows)
    grey = np.asarray(img.convert("L").resize((w, h)), dtype=np.float64) / 255.0
    idx = np.minimum((grey * len(RAMP)).astype(int), len(RAMP) - 1)
    return Text("\n".join("".join(RAMP[i] for i in line) for line in idx))


def picture_renderable(img: PILImage.Image, cols: int, rows: int, mode: str):
    """A rich renderable of `img` in at most cols x rows cells (graphics, half blocks or
    ASCII)."""
    if mode == "ascii":
        return ascii_text(img, cols, rows)
    w, h = fit_cells(img.width, img.height, cols, rows)
    if mode in RENDERABLES:
        return RENDERABLES[mode](img, width=w, height=h)
    return HalfcellImage(img.resize((w, 2 * h)), width=w, height=h)


class Cells(Widget):
    """Half blocks or characters drawn at render time, so they always fit the final size."""

    DEFAULT_CSS = "Cells { width: 1fr; height: 1fr; }"

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.image: PILImage.Image | None = None
        self.notice = ""

    def render(self):
        if self.image is None:
            return Text(self.notice, overflow="ellipsis", no_wrap=True)
        cols, rows = max(self.size.width, 8), max(self.size.height, 4)
        return picture_renderable(self.image, cols, rows, self.mode)


class Picture(Container):
    """The picture pane: an image, or the one line saying why there is none."""

    DEFAULT_CSS = """
    Picture { height: 1fr; width: 1fr; }
    Picture > .graphics { width: 1fr; height: 1fr; }
    """

    def __init__(self, mode: str = "halfcell", **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.image: PILImage.Image | None = None  # what is drawn now
        self.notice = ""

    def compose(self) -> ComposeResult:
        yield Cells("halfcell" if self.mode in WIDGETS else self.mode, id="picture-cells")

    def show(self, img: PILImage.Image | None, notice: str = "") -> None:
        """Draw `img`, or `notice` when it is None; never raises on a bad image."""
        self.image, self.notice = img, notice
        for child in list(self.query(".graphics")):
            child.remove()
        cells = self.query_one(Cells)
        graphics = img is not None and self.mode in WIDGETS
        cells.image, cells.notice = (None if graphics else img), notice
        cells.display = not graphics
        cells.refresh()
        if graphics:
            self.mount(WIDGETS[self.mode](img, classes="graphics"))
