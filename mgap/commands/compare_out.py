"""The plots of `mgap compare`: the scatter (one point per store, labelled by its model)
and the `--by step` trajectory, in the terminal (plotext, `engine/plots/compare.py`) and
as a PNG (`--png`, matplotlib from the `png` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mgap.core.errors import UsageError
from mgap.output import stdout

if TYPE_CHECKING:
    from mgap.engine.reports.compare import CompareRow, TrajectoryBlock


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError(
            "--png needs matplotlib", hint="install the png extra: pip install 'mgap[png]'"
        ) from exc
    return plt


def png_scatter(path: str, xs: list[float], ys: list[float], labels: list[str], x: str, y: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(xs, ys)
    for px, py, label in zip(xs, ys, labels, strict=True):
        ax.annotate(label, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def draw(
    rows: list[CompareRow], x: str | None, y: str | None, png: str | None, terminal: bool
) -> None:
    """The chosen pair (`scatter_pair`) in the terminal and/or to `png`."""
    from mgap.engine.plots.compare import scatter_text
    from mgap.engine.studies.compare import short_name
    from mgap.engine.studies.correlate import column, scatter_pair

    x, y = scatter_pair(rows, x, y)
    xs, ys = column(rows, x).tolist(), column(rows, y).tolist()
    labels = [short_name(r) for r in rows]
    if terminal:
        text = scatter_text(xs, ys, labels, x, y)
        stdout.print(text, highlight=False, markup=False)
    if png:
        png_scatter(png, xs, ys, labels, x, y)


def png_trajectory(path: str, block: TrajectoryBlock) -> None:
    """Two panels against the step: the gap metrics above, performance below."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for ax, kind in zip(axes, ("gap", "performance"), strict=True):
        for s in (s for s in block.series if s.kind == kind):
            ax.plot(block.steps, s.values, marker="o", label=s.metric)
        ax.set_ylabel(kind)
        ax.legend(fontsize=8)
    axes[-1].set_xlabel(block.by)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def draw_trajectory(block: TrajectoryBlock, png: str | None, terminal: bool) -> None:
    """The trajectory's two panels in the terminal and/or to `png`."""
    from mgap.engine.plots.compare import trajectory_text

    if terminal:
        for kind in ("gap", "performance"):
            text = trajectory_text(block, kind)
            stdout.print(text, highlight=False, markup=False)
    if png:
        png_trajectory(png, block)
