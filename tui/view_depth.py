"""Results › Depth: the gap and the alignment of a store with per-layer states, layer by layer.

A plotext line chart (`tui/line_chart.py`) of L2M, RMG and the paired cosine against
the layer (`mgap gap --layers`), and the layers × layers linear CKA heatmap of the REFs
the Results pane picks (`mgap cka A@all B@all`, `tui/depth_data.py`). The arrow keys move
over the heatmap's cells and the line above it says the cell's value and both layers;
Escape (a Results binding) goes back. Both reports are computed in thread workers, only
while the view is shown, and kept per store / REF pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from mgap.engine.reports.depth import DepthGapReport
from mgap.engine.reports.layer_matrix import LayerMatrixReport
from mgap.tui.depth_heatmap import LayerHeatmap
from mgap.tui.line_chart import Line, LineChart
from mgap.tui.render import num
from mgap.tui.workers import WorkerHost

#: layer ticks on the chart's x axis at most (every k-th layer above it)
MAX_TICKS = 8
#: the chart's lines: label, DepthGapRow field, plain marker
SERIES = (("L2M", "l2m", "*"), ("RMG", "rmg", "+"), ("paired cos", "mean_paired_cosine", "x"))


@dataclass
class DepthGapComputed(Message, bubble=False):
    path: Path
    report: DepthGapReport


@dataclass
class DepthCkaComputed(Message, bubble=False):
    refs: tuple[str, str]
    report: LayerMatrixReport


def compute_depth_gap(path: Path) -> DepthGapComputed:
    from mgap.tui.depth_data import depth_gap

    return DepthGapComputed(path, depth_gap(path))


def compute_depth_cka(refs: tuple[str, str]) -> DepthCkaComputed:
    from mgap.tui.depth_data import depth_cka

    return DepthCkaComputed(refs, depth_cka(*refs))


def ref_label(ref: str) -> str:
    """`dir/store.h5:image@all` -> `store.h5:image`."""
    return Path(ref.rsplit("@", 1)[0]).name


def cell_line(report: LayerMatrixReport, row: int, column: int) -> str:
    """`image layer 3 × text layer 5 · CKA 0.812 [0.790, 0.830]` (the store names too when
    the two REFs are two stores)."""
    value = report.matrix[row][column]
    interval = ""
    estimate = report.estimate
    if estimate is not None and estimate.interval and "matrix" in estimate.interval:
        low, high = estimate.interval["matrix"][row][column]
        interval = f" [{num(low, 3)}, {num(high, 3)}]"
    name_a, name_b = (Path(name).name for name in report.names)
    store_a, store_b = name_a.rsplit(":", 1)[0], name_b.rsplit(":", 1)[0]
    if store_a == store_b:  # one store's two sides: the side says enough
        name_a, name_b = name_a.removeprefix(store_a + ":"), name_b.removeprefix(store_b + ":")
    return (
        f"{name_a} layer {report.rows[row]} × {name_b} layer "
        f"{report.columns[column]} · {report.measure.upper()} {num(value, 3)}{interval}"
    )


def matrix_title(report: LayerMatrixReport) -> str:
    sampled = report.estimate is not None and report.estimate.mode != "exact"
    parts = [f"{report.measure.upper()} {report.kernel or ''} {report.space}".replace("  ", " ")]
    parts.append(f"{'sampled ' if sampled else ''}n={report.n}")
    if report.best is not None:
        parts.append(f"best {report.best.row}×{report.best.column} {num(report.best.value, 3)}")
    return " · ".join(parts)


class DepthView(WorkerHost, Vertical):
    """The chart and the heatmap of the store shown; `open` says what to show."""

    WORKER_TITLE = "Depth"
    WORKER_LABELS = {"depth-gap": "gap across depth", "depth-cka": "layers × layers CKA"}

    def __init__(self, plain: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plain = plain
        self.path: Path | None = None
        self.refs: tuple[str, str] | None = None
        self.gaps: dict[Path, DepthGapReport] = {}
        self.matrices: dict[tuple[str, str], LayerMatrixReport] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="depth-status", classes="status")
        yield Static("", id="depth-cell")
        with VerticalScroll(id="depth-body"):
            yield Static("", id="depth-gap-note")
            yield LineChart(self.plain, id="depth-chart")
            yield Static("", id="depth-matrix-title")
            yield LayerHeatmap(self.plain, id="depth-heatmap")

    def focus_table(self) -> None:
        self.query_one(LayerHeatmap).focus()

    def forget(self, path: Path) -> None:
        self.gaps.pop(path, None)
        for refs in [r for r in self.matrices if any(str(path) in ref for ref in r)]:
            del self.matrices[refs]

    def open(self, path: Path, refs: tuple[str, str]) -> None:
        """Show `path`'s gap across depth and the CKA of `refs`, computing what is missing."""
        self.path, self.refs = path, refs
        if path in self.gaps:
            self._chart(self.gaps[path])
        else:
            self._note(f"computing the gap of every layer of {path.name}…")
            self.start_worker("depth-gap", lambda: compute_depth_gap(path), key=path)
        heatmap = self.query_one(LayerHeatmap)
        if refs in self.matrices:
            self._matrix(self.matrices[refs])
        else:
            heatmap.show(None)
            self.query_one("#depth-matrix-title", Static).update("")
            self.query_one("#depth-cell", Static).update(
                Text(f"computing {ref_label(refs[0])} × {ref_label(refs[1])} CKA…", style="dim")
            )
            self.start_worker("depth-cka", lambda: compute_depth_cka(refs), key=refs)

    def close(self) -> None:
        self.cancel_workers("depth-gap", "depth-cka")

    # ---- results ------------------------------------------------------------------------
    def on_depth_gap_computed(self, message: DepthGapComputed) -> None:
        self.gaps[message.path] = message.report
        if message.path == self.path:
            self._chart(message.report)

    def on_depth_cka_computed(self, message: DepthCkaComputed) -> None:
        self.matrices[message.refs] = message.report
        if message.refs == self.refs:
            self._matrix(message.report)

    def on_worker_failed(self, message: Any) -> None:
        if message.group == "depth-gap" and message.key == self.path:
            self._note(f"no gap across depth: {message.message}")
        elif message.group == "depth-cka" and message.key == self.refs:
            self.query_one("#depth-cell", Static).update(
                Text(f"no layers × layers CKA: {message.message}", style="dim")
            )

    def on_layer_heatmap_moved(self, message: LayerHeatmap.Moved) -> None:
        report = self.query_one(LayerHeatmap).report
        if report is not None:
            line = cell_line(report, message.row, message.column)
            self.query_one("#depth-cell", Static).update(line)

    def workers_changed(self) -> None:
        if not self.is_mounted:
            return
        busy = self.busy
        line = "↑↓←→ move over the heatmap · esc back"
        if busy:
            line += " · computing " + ", ".join(sorted(busy)) + "…"
        self.query_one("#depth-status", Static).update(line, layout=False)

    # ---- drawing ------------------------------------------------------------------------
    def _note(self, line: str) -> None:
        self.query_one("#depth-gap-note", Static).update(Text(line, style="dim"))

    def _chart(self, report: DepthGapReport) -> None:
        layers = [row.layer for row in report.layers]
        lines = [
            Line(label, layers, [getattr(row, field) for row in report.layers], marker)
            for label, field, marker in SERIES
        ]
        step = max(1, -(-len(layers) // MAX_TICKS))
        chart = self.query_one(LineChart)
        chart.show(lines, "layer", layers[::step])
        title = Text(f"gap across depth ({report.space}, n={report.n_images}) ")
        self.query_one("#depth-gap-note", Static).update(title + chart.legend())

    def _matrix(self, report: LayerMatrixReport) -> None:
        self.query_one("#depth-matrix-title", Static).update(matrix_title(report))
        self.query_one(LayerHeatmap).show(report)
