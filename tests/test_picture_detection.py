"""Which drawing the picture pane picks, without a real terminal: Kitty graphics when the
environment says Kitty, Sixel where textual-image's terminal query found it, half blocks
inside tmux/screen and elsewhere, plain characters with --ascii or NO_COLOR."""

from __future__ import annotations

import asyncio
import importlib
import sys

import pytest

pytest.importorskip("textual_image")

import textual_image.renderable as detection  # noqa: E402
import textual_image.widget as graphics_widgets  # noqa: E402
from PIL import Image  # noqa: E402
from textual.app import App  # noqa: E402
from textual_image.renderable import (  # noqa: E402
    HalfcellImage,
    SixelImage,
    TGPImage,
    UnicodeImage,
    sixel,
    tgp,
)

from mgap.tui.picture import Picture, picture_mode, picture_renderable  # noqa: E402

KITTY = {"TERM": "xterm-kitty"}


@pytest.fixture
def found(monkeypatch):
    """Set what textual-image's import-time terminal query left (restored afterwards)."""

    def set_found(renderable) -> None:
        monkeypatch.setattr(detection, "Image", renderable)

    set_found(UnicodeImage)  # what it finds when stdout is not a terminal, as under pytest
    return set_found


@pytest.mark.parametrize(
    "env",
    [KITTY, {"TERM": "xterm-256color", "KITTY_WINDOW_ID": "3"}],
    ids=["TERM", "KITTY_WINDOW_ID"],
)
def test_kitty_environment_picks_the_kitty_renderer(found, env):
    assert picture_mode(env=env) == "kitty"  # even when the terminal query went unanswered
    found(SixelImage)
    assert picture_mode(env=env) == "kitty"  # Kitty draws no Sixel
    assert picture_mode(env={**env, "TMUX": "/tmp/tmux-0/default,1,0"}) == "halfcell"
    assert picture_mode(env={**env, "TERM": "screen-256color"}) == "halfcell"
    assert picture_mode(env={**env, "NO_COLOR": "1"}) == "ascii"
    assert picture_mode(ascii_only=True, env=env) == "ascii"


def test_sixel_where_detected_half_blocks_elsewhere(found):
    plain = {"TERM": "xterm-256color"}
    assert picture_mode(env=plain) == "halfcell"
    found(HalfcellImage)  # a terminal that answered neither query
    assert picture_mode(env=plain) == "halfcell"
    found(SixelImage)
    assert picture_mode(env=plain) == "sixel"
    assert picture_mode(env={**plain, "TMUX": "x"}) == "halfcell"
    assert picture_mode(env={"TERM": "tmux-256color"}) == "halfcell"
    assert picture_mode(env={**plain, "NO_COLOR": "1"}) == "ascii"
    found(TGPImage)  # a terminal that answered the Kitty graphics query
    assert picture_mode(env=plain) == "kitty"


class _Terminal:
    """A stdout that says it is a terminal (textual-image asks before it queries)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("sixel_ok", "tgp_ok", "mode"),
    [(True, False, "sixel"), (False, True, "kitty"), (False, False, "halfcell")],
)
def test_through_textual_images_own_query(monkeypatch, sixel_ok, tgp_ok, mode):
    """textual-image's import-time detection, with its two terminal queries answered."""
    monkeypatch.setattr(detection, "Image", detection.Image)  # restored after the reload
    monkeypatch.setattr(detection, "is_tty", detection.is_tty)
    monkeypatch.setattr(sys, "__stdout__", _Terminal())
    monkeypatch.setattr(sixel, "query_terminal_support", lambda: sixel_ok)
    monkeypatch.setattr(tgp, "query_terminal_support", lambda: tgp_ok)
    importlib.reload(detection)
    assert picture_mode(env={"TERM": "xterm-256color"}) == mode


def test_graphics_renderables_for_the_command_line():
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    assert isinstance(picture_renderable(img, 20, 10, "kitty"), TGPImage)
    assert isinstance(picture_renderable(img, 20, 10, "sixel"), SixelImage)
    assert isinstance(picture_renderable(img, 20, 10, "halfcell"), HalfcellImage)


@pytest.mark.parametrize(
    ("mode", "widget"),
    [("kitty", graphics_widgets.TGPImage), ("sixel", graphics_widgets.SixelImage)],
)
def test_picture_pane_mounts_the_graphics_widget(mode, widget):
    class One(App):
        def compose(self):
            yield Picture(mode, id="picture")

    async def scenario() -> None:
        app = One()
        async with app.run_test(size=(60, 20)) as pilot:
            picture = app.query_one(Picture)
            picture.show(Image.new("RGB", (40, 30), (10, 200, 10)))
            await pilot.pause()
            (drawn,) = picture.query(".graphics")
            assert isinstance(drawn, widget)
            assert not picture.query_one("#picture-cells").display
            picture.show(None, "image not reachable: x.png")
            await pilot.pause()
            assert not picture.query(".graphics")
            assert picture.query_one("#picture-cells").display

    asyncio.run(scenario())
