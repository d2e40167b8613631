"""The scatter of `mgap compare`: one point per store, labelled by its model, in the
terminal (plotext) and as a PNG (`--png`, matplotlib from the `png` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mgap.core.errors import UsageError
from mgap.output import stdout

if TYPE_CHECKING:
    from mgap.engine.reports.compare import CompareRow


def _padded(values: list[float], low: float, high: float) -> tuple[float, float]:
    """Limits with room for the labels (a flat axis is widened by 1 each way)."""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return lo - low * span, hi + high * span


def terminal_scatter(xs: list[float], ys: list[float], labels: list[str], x: str, y: str) -> str:
    """The plotext scatter as text: each store a dot with its label to its right."""
    import plotext as plt

    fig = plt.figure
    fig.clear()
    plt.terminal.limit(False, False)
    fig.plot_size(80, 22)
    for px, py, label in zip(xs, ys, labels, strict=True):
        fig.draw(fig.text(px, py, f"•{label}"))
    fig.ruler(0).lim(*_padded(xs, 0.05, 0.3))
    fig.ruler(1).lim(*_padded(ys, 0.1, 0.1))
    fig.title(f"{y} (vertical) against {x} (horizontal)")
    return fig.build().string(colorless=True)


def png_scatter(path: str, xs: list[float], ys: list[float], labels: list[str], x: str, y: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError(
            "--png needs matplotlib", hint="install the png extra: pip install 'mgap[png]'"
        ) from exc
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
    from mgap.engine.studies.compare import short_name
    from mgap.engine.studies.correlate import column, scatter_pair

    x, y = scatter_pair(rows, x, y)
    xs, ys = column(rows, x).tolist(), column(rows, y).tolist()
    labels = [short_name(r) for r in rows]
    if terminal:
        stdout.print(terminal_scatter(xs, ys, labels, x, y), highlight=False, markup=False)
    if png:
        png_scatter(png, xs, ys, labels, x, y)
