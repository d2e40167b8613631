"""The plots of `mgap compare` as terminal text (plotext), shared by the CLI and the TUI's
Compare view: the labelled gap-vs-performance scatter and the trajectory against step."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mgap.engine.reports.compare import TrajectoryBlock

#: one marker per line, so the lines differ without colour
MARKERS = ("●", "+", "x", "◆", "o", "*")


def _padded(values: list[float], low: float, high: float) -> tuple[float, float]:
    """Limits with room for the labels (a flat axis is widened by 1 each way)."""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return lo - low * span, hi + high * span


def _figure(width: int, height: int):
    import plotext as plt

    fig = plt.figure
    fig.clear()
    plt.terminal.limit(False, False)
    fig.plot_size(max(width, 20), max(height, 8))
    return fig


def scatter_text(
    xs: list[float],
    ys: list[float],
    labels: list[str],
    x: str,
    y: str,
    *,
    size: tuple[int, int] = (80, 22),
    colorless: bool = True,
) -> str:
    """Each store a dot with its label to its right; `y` against `x`."""
    fig = _figure(*size)
    for px, py, label in zip(xs, ys, labels, strict=True):
        fig.draw(fig.text(px, py, f"•{label}"))
    fig.ruler(0).lim(*_padded(xs, 0.05, 0.3))
    fig.ruler(1).lim(*_padded(ys, 0.1, 0.1))
    fig.title(f"{y} (vertical) against {x} (horizontal)")
    return fig.build().string(colorless=colorless)


def trajectory_text(
    block: TrajectoryBlock,
    kind: str,
    *,
    size: tuple[int, int] = (80, 18),
    colorless: bool = True,
) -> str:
    """The `kind` ("gap" or "performance") series of `block` as lines against the step."""
    fig = _figure(*size)
    series = [s for s in block.series if s.kind == kind]
    values = [v for s in series for v in s.values] or [0.0]
    for marker, s in zip(MARKERS * 2, series, strict=False):
        fig.draw(fig.signal(block.steps, s.values, marker=marker).lines().label(s.metric))
    fig.ruler(0).lim(*_padded([float(v) for v in block.steps], 0.02, 0.02))
    fig.ruler(1).lim(*_padded(values, 0.05, 0.05))
    fig.title(f"{kind} against {block.by}")
    return fig.build().string(colorless=colorless)
