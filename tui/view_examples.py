"""The examples drill-down: a category's images worst first, the selected one's picture,
its captions with cosines and the captions retrieved in their place (✓ true, ✗ not).

Opened by Enter on a category row of Results; Escape goes back. The list is one
`examples_report` (ranks from the sidecar cache when present). Once it is drawn, a second
worker gets the top-5 of every listed image in one pass over the captions (or from the
cache, where the list's own pass left them), so arrows only redraw. The opened store is
kept while its file is unchanged: a second drill-down reads no metadata again.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from mgap.engine.reports.examples import Example, ExamplesReport
from mgap.tui.messages import WorkerFailed
from mgap.tui.picture import Picture, load_picture, picture_mode, with_attention
from mgap.tui.render import num
from mgap.tui.scatter import ScatterView
from mgap.tui.workers import WorkerHost

#: images the list shows (the worst ones by the chosen sort)
LIST_LIMIT = 200
#: retrieved captions shown per image
TOP_K = 5
SORTS = ("pair", "rank", "centroid")


@dataclass
class ExamplesListed(Message, bubble=False):
    report: ExamplesReport


@dataclass
class ExamplesRetrieved(Message, bubble=False):
    sort: str
    examples: list[Example]


@dataclass
class ExampleDetailed(Message, bubble=False):
    example: Example
    picture: Any
    notice: str
    attention: Any


_OPENED: dict[str, tuple[tuple[int, int], Any]] = {}
_OPENING = threading.Lock()


def store_at(path: Path) -> Any:
    """The store at `path`, opened once while its file keeps its size and mtime (its
    metadata takes seconds to read on a COCO-train-sized store)."""
    from mgap.store import open_store

    st = os.stat(path)
    version = (st.st_mtime_ns, st.st_size)
    with _OPENING:
        known = _OPENED.get(str(path))
        if known is None or known[0] != version:
            _OPENED.clear()
            known = _OPENED[str(path)] = (version, open_store(path))
        return known[1]


def list_examples(path: Path, category: str, sort: str) -> ExamplesListed:
    """The list; when its ranks need a pass over the captions, that pass keeps the top-5
    in the cache too (`fetch_k`), so `retrieved_all` then reads them back."""
    from mgap.engine.studies.examples import examples_report

    report = examples_report(
        store_at(path),
        category=category,
        sort=sort,
        n=LIST_LIMIT,
        k=0,
        with_centroid=False,
        fetch_k=TOP_K,
    )
    return ExamplesListed(report)


def retrieved_all(path: Path, category: str, sort: str, rows: list[int]) -> ExamplesRetrieved:
    """The listed images (`rows`) again with their top-5: only their rows are read, and one
    pass over the captions is made unless the list's own pass cached it."""
    from mgap.engine.studies.examples import examples_report

    report = examples_report(
        store_at(path),
        category=category,
        sort=sort,
        n=len(rows),
        k=TOP_K,
        only=rows,
        with_centroid=False,
    )
    return ExamplesRetrieved(sort, report.examples)


def attention_map(path: Path, image_id: str) -> Any:
    """The cached attention grid of this image (what `mgap attention` left), or None."""
    from mgap.engine.attention.cache import load_attention
    from mgap.tui.view_attention import IMAGES, LAYER, SEED

    report = load_attention(path, IMAGES, LAYER, SEED)
    images = report.images if report is not None else []
    return next((image.map for image in images if image.id == image_id), None)


def picture_of(path: Path, example: Example) -> ExampleDetailed:
    """The example's picture (or why there is none) and its cached attention grid."""
    root = store_at(path).attrs.get("data_root")
    img, notice = load_picture(str(root) if root else None, example.path)
    return ExampleDetailed(example, img, notice, attention_map(path, example.id))


def example_text(ex: Example) -> Text:
    """Its captions with cosines, then the top-5 retrieved, marked ✓ (true) or ✗."""
    text = Text()
    text.append(f"{ex.id}", style="bold")
    text.append(f"  [{ex.category or '-'}]  rank {num(ex.rank, 1)}\n")
    for m in ex.true:
        text.append(f"  {num(m.cosine, 3)}  {m.label}\n")
    text.append("retrieved\n" if ex.retrieved else "retrieved: computing…\n", style="bold")
    for m in ex.retrieved:
        text.append("✓" if m.true else "✗", style="green" if m.true else "red")
        text.append(f" {num(m.cosine, 3)}  {m.label}  [{m.category or '-'}]\n")
    return text


def only_pairs_of(projection: Any, image: int) -> Any:
    """The projection with only `image`'s captions still linked to their image, so the
    drawn pair lines join the selected image to its true captions and nothing else."""
    texts = projection.modality == 1
    index = np.where(texts & (projection.image_index != image), -1, projection.image_index)
    return dataclasses.replace(projection, image_index=index)


class PairScatter(ScatterView):
    """The Results scatter, category in colour and others grey, with the selected image
    joined to its true captions (a 2-D layout alone misleads about the gap)."""

    def render(self) -> Text:
        if self.projection is None:
            return Text(self.message, style="dim")
        from mgap.engine.plots.terminal import render_scatter

        return render_scatter(
            self.projection,
            self.size.width,
            self.size.height,
            color_by="category",
            highlight=self.highlight,
            pairs=True,
            legend=False,
            ascii=self.ascii_only,
        )


class ExamplesScreen(WorkerHost, Screen):
    """A category's examples; arrows move, `s` sorts, `a` shows attention, Escape returns."""

    WORKER_TITLE = "Examples"
    BINDINGS = [
        Binding("escape", "back", "Back", id="examples.back"),
        Binding("s", "sort", "Sort", id="examples.sort"),
        Binding("a", "attention", "Attention", id="examples.attention"),
    ]
    DEFAULT_CSS = """
    #examples-left { width: 38; height: 1fr; }
    #examples-list { height: 1fr; }
    #examples-scatter { height: 1fr; }
    #examples-right { width: 1fr; height: 1fr; }
    #example-text { height: auto; max-height: 50%; }
    """

    def __init__(
        self, path: Path, category: str, ascii_only: bool = False, projection: Any = None
    ) -> None:
        super().__init__()
        self.projection, self.ascii_only = projection, ascii_only
        self.path, self.category, self.sort = path, category, SORTS[0]
        self.mode = picture_mode(ascii_only)
        self.report: ExamplesReport | None = None
        self.detail: ExampleDetailed | None = None
        self.retrieved: dict[int, Example] = {}  # row -> the example with its top-5
        self.selected: int | None = None
        self.show_attention = False

    def compose(self) -> ComposeResult:
        yield Static("", id="examples-title")
        with Horizontal():
            with Vertical(id="examples-left"):
                yield DataTable(id="examples-list", cursor_type="row", zebra_stripes=True)
                yield PairScatter(self.ascii_only, id="examples-scatter")
            with Vertical(id="examples-right"):
                yield Picture(self.mode, id="picture")
                yield Static("", id="example-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#examples-list", DataTable)
        for name, width in (("image", 18), ("pair cos", 8), ("rank", 6)):
            table.add_column(name, width=width)
        table.focus()
        self._load()

    def _load(self) -> None:
        self._title(f"computing ({self.sort})…")
        self.retrieved = {}
        self.cancel_workers("retrieved")
        self.start_worker("list", lambda: list_examples(self.path, self.category, self.sort))

    def _title(self, note: str = "") -> None:
        self.query_one("#examples-title", Static).update(
            Text(f"{self.category} · worst by {self.sort} · {note}", no_wrap=True), layout=False
        )

    def on_examples_listed(self, message: ExamplesListed) -> None:
        self.report = message.report
        table = self.query_one("#examples-list", DataTable)
        table.clear()
        for ex in self.report.examples:
            table.add_row(ex.id[:18], num(ex.pair_cosine, 3), num(ex.rank, 1), key=str(ex.row))
        shown = len(self.report.examples)
        self._title(f"{shown} of {self.report.n_candidates} images · ranks {self.report.ranks}")
        if not shown:
            self.query_one(Picture).show(None, "no image of this category has a caption")
            return
        sort, rows = self.sort, [ex.row for ex in self.report.examples]
        self.start_worker("retrieved", lambda: retrieved_all(self.path, self.category, sort, rows))
        table.move_cursor(row=0)
        self._select(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._select(event.cursor_row)

    def _select(self, index: int) -> None:
        """Show what is known at once (the top-5 once its worker is done); the picture
        follows from a worker."""
        if self.report is None or not 0 <= index < len(self.report.examples):
            return
        example = self.report.examples[index]
        self.selected = example.row
        shown = self.retrieved.get(example.row, example)
        self.query_one("#example-text", Static).update(example_text(shown))
        self._scatter(example.row)
        self.start_worker("picture", lambda: picture_of(self.path, example))

    def _scatter(self, row: int) -> None:
        scatter = self.query_one(PairScatter)
        if self.projection is None:
            scatter.say("no scatter yet (Results computes it)")
            return
        names = self.projection.category_names
        scatter.highlight = self.category if self.category in names else None
        scatter.projection = only_pairs_of(self.projection, row)

    def on_example_detailed(self, message: ExampleDetailed) -> None:
        if message.example.row == self.selected:
            self.detail = message
            self._draw()

    def on_examples_retrieved(self, message: ExamplesRetrieved) -> None:
        if message.sort != self.sort:
            return
        self.retrieved = {ex.row: ex for ex in message.examples}
        if self.selected in self.retrieved:
            self.query_one("#example-text", Static).update(
                example_text(self.retrieved[self.selected])
            )

    def _draw(self) -> None:
        d = self.detail
        if d is None:
            return
        img = d.picture
        if img is not None and self.show_attention and d.attention is not None:
            img = with_attention(img, d.attention)
        self.query_one(Picture).show(img, d.notice)

    def on_worker_failed(self, message: WorkerFailed) -> None:
        message.stop()
        self._title(message.message)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._load()

    def action_attention(self) -> None:
        if self.detail is None or self.detail.attention is None:
            self.notify("no cached attention map for this image (run `mgap attention`)")
            return
        self.show_attention = not self.show_attention
        self._draw()
