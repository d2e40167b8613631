"""Colours shared by the terminal renderer and the PNG export, so both figures read alike.

Hex strings work in rich (downgraded to 256/16 colours on older terminals) and matplotlib.
Category colours are Tableau-10 without its grey, which is kept for "other" and dimmed points.
"""

from __future__ import annotations

#: modality 0 = image, 1 = text
MODALITY_COLORS = ("#1f77b4", "#ff7f0e")
MODALITY_NAMES = ("image", "text")

#: one colour per shown category, in order of size; the rest share OTHER_COLOR
CATEGORY_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
OTHER_COLOR = "#7f7f7f"

#: a highlighted category is drawn bright, everything else dim
HIGHLIGHT_COLOR = "#ffd700"
DIM_COLOR = "#4e4e4e"
#: lines joining an image to its captions
PAIR_COLOR = "#6c6c6c"
