"""The publication version of the terminal scatter: the same colours, groups and pairs as PNG.

Public API: `save_png(projection, path, *, color_by="modality", highlight=None, pairs=False,
title="", dpi=150, size=(8, 6)) -> Path`. The image is exactly size × dpi pixels. The
title defaults to "model · dataset · METHOD" and always says "N of M shown" when the
projection is a sample. matplotlib is the optional extra `png`; without it a UsageError says
how to install it. Only the object-oriented API is used (no pyplot state, no GUI backend).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mgap.core.errors import MgapError, UsageError
from mgap.engine.measures.projections import Projection
from mgap.engine.plots.palette import PAIR_COLOR, ColorGroups, color_groups
from mgap.engine.plots.terminal import AXIS_NAMES, pair_segments


def _marker_size(n: int) -> float:
    """Smaller dots for bigger clouds, so dense regions stay readable."""
    return float(np.clip(4000.0 / max(n, 1), 0.5, 20.0))


def _draw_groups(ax, projection: Projection, groups: ColorGroups, dot: float) -> None:
    """One scatter per colour group and modality, the highlighted group last (on top); when
    colour shows categories, the shapes tell the modalities apart."""
    coords = projection.coords
    order = [i for i in range(len(groups.names)) if i != groups.top]
    order += [] if groups.top is None else [groups.top]
    shapes = {0: "o", 1: "o"} if groups.names == ["image", "text"] else {0: "o", 1: "^"}
    for index in order:
        on_top = index == groups.top
        label = f"{groups.names[index]} ({groups.counts[index]:,})"
        for modality, shape in shapes.items():
            points = coords[(groups.of_point == index) & (projection.modality == modality)]
            if not points.size:
                continue
            ax.scatter(
                points[:, 0],
                points[:, 1],
                s=dot * (3 if on_top else 1),
                c=groups.colors[index],
                marker=shape,
                alpha=1.0 if on_top else 0.6,
                linewidths=0,
                label=label,
                rasterized=True,
            )
            label = "_"  # one legend entry per group
    if shapes[1] != "o":
        for modality, name in ((0, "image"), (1, "text")):
            ax.scatter([], [], c="black", marker=shapes[modality], s=dot, label=name)


def _label_axes(ax, projection: Projection, title: str, dot: float) -> None:
    axis = AXIS_NAMES.get(projection.method, "")
    ax.set_xlabel(f"{axis}1")
    ax.set_ylabel(f"{axis}2")
    heading = title or projection.title()
    if projection.n_shown < projection.n_total:
        heading = f"{heading} ({projection.shown_label()})"
    ax.set_title(heading, fontsize=10)
    ax.legend(markerscale=max(1.0, 6.0 / np.sqrt(dot)), fontsize=8, loc="best", frameon=False)


def save_png(
    projection: Projection,
    path: str | os.PathLike,
    *,
    color_by: str = "modality",
    highlight: str | None = None,
    pairs: bool = False,
    title: str = "",
    dpi: int = 150,
    size: tuple[float, float] = (8, 6),
) -> Path:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError(
            "--png needs matplotlib, which is not installed", hint="pip install 'mgap[png]'"
        ) from exc
    groups = color_groups(
        projection.modality,
        projection.category,
        projection.category_names,
        color_by=color_by,
        highlight=highlight,
    )
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if pairs:
        a, b = pair_segments(projection, limit=2000)
        segments = np.stack([projection.coords[a], projection.coords[b]], axis=1)
        ax.add_collection(LineCollection(segments, colors=PAIR_COLOR, linewidths=0.3, alpha=0.5))
    dot = _marker_size(projection.n_shown)
    _draw_groups(ax, projection, groups, dot)
    _label_axes(ax, projection, title, dot)
    path = Path(path)
    try:
        fig.savefig(path, dpi=dpi, format="png")
    except OSError as exc:
        raise MgapError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
