"""Results › Hyperbolic: the Lorentz numbers of a hyperbolic store and a traversal per image.

Top: distance from the origin per modality (with a small histogram), the entailment-cone
statistic, the tangent-space gap with and without norms. Below: the images with their
distance from the origin; ↑/↓ picks one and the geodesic from it to the origin is listed
with the nearest caption at each step (MERU's image traversal). Both computations run in
thread workers and only while the view is shown; the view never loads a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from mgap.tui.render import num
from mgap.tui.store_view import StoreReportView

if TYPE_CHECKING:
    from mgap.engine.reports.analysis import HyperbolicReport
    from mgap.engine.reports.studies import TraverseReport

#: images listed in the table (a traversal is computed for the highlighted one only)
MAX_ROWS = 2_000
STEPS = 6


@dataclass
class HyperbolicComputed(Message, bubble=False):
    """The hyperbolic summary of `path` and its first images; `report` None = not Lorentz."""

    path: Path
    report: HyperbolicReport | None
    images: list[tuple[str, float, str]]


@dataclass
class TraversalComputed(Message, bubble=False):
    path: Path
    image: str
    report: TraverseReport


def compute_hyperbolic(path: Path) -> HyperbolicComputed:
    import numpy as np

    from mgap.engine.measures.hyperbolic import distance_from_origin
    from mgap.engine.studies.hyperbolic import hyperbolic_report
    from mgap.engine.studies.pairs import store_pairs
    from mgap.store import open_store
    from mgap.store.schema import GEOMETRY_LORENTZ

    store = open_store(path)
    if store.geometry != GEOMETRY_LORENTZ:
        return HyperbolicComputed(path, None, [])
    X, Y, index = store_pairs(store, what="the hyperbolic view")
    c = abs(store.curvature)
    report = hyperbolic_report(X, Y, index, c)
    ids = np.asarray(store.image_ids).astype(str)
    captions = np.asarray(store.captions).astype(str)
    first = {}
    for j, i in enumerate(index):
        first.setdefault(int(i), captions[j])
    depth = distance_from_origin(X[:MAX_ROWS], c)
    images = [(ids[i], float(depth[i]), first.get(i, "")) for i in range(depth.size)]
    return HyperbolicComputed(path, report, images)


def compute_traversal(path: Path, image: str) -> TraversalComputed:
    from mgap.engine.studies.traverse import traverse_report
    from mgap.store import open_store

    return TraversalComputed(
        path, image, traverse_report(open_store(path), image, steps=STEPS, k=1)
    )


def summary(report: HyperbolicReport, ascii: bool = False) -> Text:
    """Origin distances with a sparkline histogram per modality, cones and tangent gaps: six
    lines of at most 42 columns."""
    from mgap.engine.plots.histogram import sparkline

    origin, cones = report.origin_distance, report.entailment
    raw, gap = report.tangent_gap_unnormalised, report.tangent_gap
    hist = origin.histogram  # each side scaled to its own largest bin: shapes compare
    edge = "|" if ascii else "│"
    text = Text()
    text.append(f"Lorentz c={num(report.curvature, 3)} · {report.score}\n")
    text.append("d(O,·) ", style="bold")
    text.append(f"image {num(origin.image, 3)}  text {num(origin.text, 3)}\n")
    text.append(f"img {edge}{sparkline(hist.image, ascii=ascii)}{edge} {hist.edges[0]:.2f}\n")
    text.append(f"txt {edge}{sparkline(hist.text, ascii=ascii)}{edge} {hist.edges[-1]:.2f}\n")
    text.append("in caption's cone ", style="bold")
    text.append(f"{num(cones.inside, 3)}  ∠−ap {num(cones.mean_angle_minus_aperture, 3)}\n")
    text.append("tangent L2M ", style="bold")
    text.append(f"{num(gap.l2m, 3)} unit · {num(raw.centroid_distance, 3)} norms")
    return text


def traversal_text(report: TraverseReport) -> Text:
    """One line per step: t, distance from the origin, the nearest text."""
    text = Text.assemble(("traversal ", "bold"), f"{report.image} → origin\n")
    for step in report.steps:
        nearest = step.nearest[0] if step.nearest else None
        mark = "*" if nearest is not None and nearest.entails else " "
        name = "-" if nearest is None else nearest.text[:48]
        text.append(f"{step.t:4.2f} {step.origin_distance:6.3f} {mark}{name}\n")
    return text


class HyperbolicView(StoreReportView):
    """Summary, image table and the highlighted image's traversal, for the Results store."""

    WORKER_TITLE = "Hyperbolic"
    DEFAULT_CSS = """
    HyperbolicView > Static { height: auto; }
    HyperbolicView > #hyperbolic-table { height: 5; }
    """

    GROUPS = ("hyperbolic", "traversal")
    STATUS_ID, DETAIL_ID = "hyperbolic-summary", "hyperbolic-traversal"
    SUBJECT = "hyperbolic geometry"

    def __init__(self, ascii_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ascii_only = ascii_only
        self.images: list[tuple[str, float, str]] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="hyperbolic-summary")
        yield DataTable(id="hyperbolic-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="hyperbolic-traversal")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("image", "d(O,x)", "caption")

    def computing_line(self, path: Path) -> str:
        return f"computing the hyperbolic summary of {path.name}…"

    def compute_for(self, path: Path) -> Callable[[], HyperbolicComputed]:
        return lambda: compute_hyperbolic(path)

    def on_hyperbolic_computed(self, message: HyperbolicComputed) -> None:
        self._computed(message.path, message)

    def clear_rows(self) -> None:
        self.images = []

    def _show(self, computed: HyperbolicComputed) -> None:
        if computed.report is None:
            self._say(
                "not a Lorentz store: this view is for hyperbolic models "
                "(meru: checkpoints, or `mgap import --geometry lorentz`)"
            )
            return
        self.query_one("#hyperbolic-summary", Static).update(
            summary(computed.report, self.ascii_only)
        )
        self.images = computed.images
        table = self.query_one(DataTable)
        table.clear()
        for i, (image, depth, caption) in enumerate(self.images):
            table.add_row(image[:12], num(depth, 3), Text(caption[:40]), key=str(i))
        self._traverse(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._traverse(event.cursor_row)

    def _traverse(self, index: int) -> None:
        if not (0 <= index < len(self.images)) or self.path is None:
            return
        path, image = self.path, self.images[index][0]
        self.query_one("#hyperbolic-traversal", Static).update(
            Text(f"computing the traversal of {image}…", style="dim")
        )
        self.start_worker("traversal", lambda: compute_traversal(path, image), key=(path, image))

    def on_traversal_computed(self, message: TraversalComputed) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        current = self.images[row][0] if 0 <= row < len(self.images) else None
        if message.path == self.path and message.image == current:
            self.query_one("#hyperbolic-traversal", Static).update(traversal_text(message.report))
