"""Colours and colour groups shared by the terminal renderer and the PNG export, so both
figures read alike.

Hex strings work in rich (downgraded to 256/16 colours on older terminals) and matplotlib.
Category colours are Tableau-10 without its grey, which is kept for "other" and dimmed points.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mgap.core.errors import UsageError

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
DIM_COLOR = "#626262"
#: lines joining an image to its captions
PAIR_COLOR = "#444444"


@dataclass
class ColorGroups:
    """Which colour group each point belongs to, and the legend of those groups."""

    of_point: np.ndarray
    names: list[str]
    colors: list[str]
    glyphs: list[str]
    counts: list[int]
    #: a group drawn on top of the others wherever it has a point (the highlighted category)
    top: int | None = None


def find_category(names: Sequence[str], query: str) -> int:
    """Index of a category by name (exact, then case-insensitive); a UsageError naming close
    matches otherwise."""
    if query in names:
        return list(names).index(query)
    lowered = [name.lower() for name in names]
    if query.lower() in lowered:
        return lowered.index(query.lower())
    if not names:
        raise UsageError(f"unknown category {query!r}: this store has no categories")
    close = difflib.get_close_matches(query.lower(), lowered, n=5, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(repr(names[lowered.index(c)]) for c in close)}?"
        if close
        else f"{len(names)} categories, e.g. {', '.join(list(names)[:5])}"
    )
    raise UsageError(f"unknown category {query!r}", hint=hint)


def color_groups(
    modality: np.ndarray,
    category: np.ndarray,
    category_names: Sequence[str],
    *,
    color_by: str = "modality",
    highlight: str | None = None,
) -> ColorGroups:
    """Modality: image/text. Category: the largest categories among the shown points get the
    9 colours, the rest (and points without a category) share grey "other". A highlighted
    category is one bright group on top of a dim rest."""
    if highlight is not None:
        wanted = find_category(category_names, highlight)
        on = (category == wanted).astype(np.int64)
        counts = np.bincount(on, minlength=2)
        return ColorGroups(
            on,
            ["other", category_names[wanted]],
            [DIM_COLOR, HIGHLIGHT_COLOR],
            [":", "#"],
            counts.tolist(),
            top=1,
        )
    if color_by == "modality":
        counts = np.bincount(modality.astype(np.int64), minlength=2)
        return ColorGroups(
            modality.astype(np.int64),
            list(MODALITY_NAMES),
            list(MODALITY_COLORS),
            ["o", "x"],
            counts.tolist(),
        )
    if color_by != "category":
        raise UsageError(f"unknown colouring {color_by!r}", hint="use modality or category")
    known = category[category >= 0]
    sizes = np.bincount(known, minlength=len(category_names))
    ranked = [int(c) for c in np.argsort(-sizes, kind="stable") if sizes[c] > 0]
    shown = ranked[: len(CATEGORY_COLORS)]
    lookup = np.full(len(category_names) + 1, len(shown), dtype=np.int64)
    lookup[shown] = np.arange(len(shown))
    of_point = lookup[np.where(category >= 0, category, len(category_names))]
    counts = np.bincount(of_point, minlength=len(shown) + 1)
    names = [category_names[c] for c in shown]
    colors = list(CATEGORY_COLORS[: len(shown)])
    glyphs = [chr(ord("a") + i) for i in range(len(shown))]
    if counts[len(shown)]:
        rest = len(ranked) - len(shown)
        names.append(f"other: {rest} categories" if rest else "no category")
        colors.append(OTHER_COLOR)
        glyphs.append("*")
    return ColorGroups(of_point, names, colors, glyphs, counts[: len(names)].tolist())
