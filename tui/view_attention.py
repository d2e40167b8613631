"""Results › Attention: the sampled images' entropies, and the highlighted image's heatmap.

Attention runs model code, so this view never does: it reads the result `mgap attention`
left in the store's sidecar cache, and when there is none it launches `mgap attention
STORE --json` as a child process in a worker (the first run loads the model: seconds to
minutes; the command caches its result, so it runs once per store). ↑/↓ move through the
images; the heatmap follows and re-renders to the space it has.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from mgap.core.errors import MgapError
from mgap.engine.attention.cache import load_attention
from mgap.engine.reports.studies import AttentionImage, AttentionReport
from mgap.tui.render import num
from mgap.tui.store_view import StoreReportView

#: what the view asks for (the command's defaults, so a plain `mgap attention` fills it)
IMAGES, LAYER, SEED = 16, -1, 0
POLL_S = 0.2


@dataclass
class AttentionComputed(Message, bubble=False):
    path: Path
    report: AttentionReport


def attention_command(path: Path) -> list[str]:
    return [
        sys.executable, "-m", "mgap", "attention", str(path), "--json",
        "--images", str(IMAGES), "--layer", str(LAYER), "--seed", str(SEED),
    ]  # fmt: skip


def run_attention(path: Path) -> AttentionReport:
    """The cached result, else `mgap attention --json` in a child process; a cancelled
    worker kills the child."""
    cached = load_attention(path, IMAGES, LAYER, SEED)
    if cached is not None:
        return cached
    process = subprocess.Popen(
        attention_command(path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = get_current_worker()
    while process.poll() is None:
        if worker.is_cancelled:
            process.kill()
            process.wait()
            raise MgapError("attention run cancelled")
        time.sleep(POLL_S)
    out, err = process.communicate()
    if process.returncode != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        reason = lines[-1].removeprefix("mgap: error: ") if lines else f"exit {process.returncode}"
        raise MgapError(reason)
    return AttentionReport.from_json(json.loads(out))


def compute_attention(path: Path) -> AttentionComputed:
    return AttentionComputed(path, run_attention(path))


def summary_line(report: AttentionReport) -> Text:
    """Two short lines: the entropy summary, then what the maps are of."""
    e, u = report.entropy, report.uniform_entropy
    grid = "×".join(map(str, report.grid)) if report.grid else "per image"
    return Text.assemble(
        ("H ", "bold"),
        f"{num(e.mean, 3)}±{num(e.std, 3)} nats · uniform {num(u.mean, 3)}\n",
        (f"grid {grid} · layer {report.layer} · {report.query}", "dim"),
    )


class AttentionView(StoreReportView):
    """Per-image entropy table and the highlighted image's heatmap, for the Results store."""

    WORKER_TITLE = "Attention"
    DEFAULT_CSS = """
    AttentionView #attention-status { height: 2; color: $text-muted; background: $surface; }
    AttentionView #attention-table { height: auto; max-height: 7; }
    AttentionView #attention-heatmap { height: 1fr; }
    """

    GROUPS = ("attention",)
    STATUS_ID, DETAIL_ID = "attention-status", "attention-heatmap"
    SUBJECT = "attention maps"

    def __init__(self, ascii_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ascii_only = ascii_only
        self.rows: list[AttentionImage] = []
        self.index = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="attention-status")
        yield DataTable(id="attention-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="attention-heatmap")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("image", "category", "grid", "H", "H/log n")

    def computing_line(self, path: Path) -> str:
        return f"attention maps of {path.name}: running mgap attention (loads the model)…"

    def compute_for(self, path: Path) -> Callable[[], AttentionComputed]:
        return lambda: compute_attention(path)

    def on_attention_computed(self, message: AttentionComputed) -> None:
        self._computed(message.path, message.report)

    def clear_rows(self) -> None:
        self.rows = []

    def _show(self, report: AttentionReport) -> None:
        self.rows = report.images
        self.query_one("#attention-status", Static).update(summary_line(report))
        table = self.query_one(DataTable)
        table.clear()
        for i, row in enumerate(self.rows):
            relative = row.entropy / row.uniform_entropy if row.patches > 1 else None
            table.add_row(
                row.id,
                row.category or "-",
                f"{row.grid[0]}×{row.grid[1]}",
                num(row.entropy, 3),
                num(relative, 3),
                key=str(i),
            )
        self._heatmap(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._heatmap(event.cursor_row)

    def on_resize(self) -> None:
        if self.rows:
            self._heatmap(self.index)

    def _heatmap(self, index: int) -> None:
        if not 0 <= index < len(self.rows) or self.path not in self.reports:
            return
        from PIL import Image

        from mgap.engine.plots.heatmap import render_heatmap

        self.index = index
        row, report = self.rows[index], self.reports[self.path]
        static = self.query_one("#attention-heatmap", Static)
        width = max(8, static.size.width or self.size.width)
        fallback = self.size.height - self.query_one(DataTable).size.height - 2
        height = max(3, static.size.height or fallback)
        caption = Text(
            f"{row.id} · {row.category or '-'} · H {row.entropy:.3f} of "
            f"log n {row.uniform_entropy:.3f}\n",
            style="bold",
        )
        try:
            with Image.open(row.path) as image:
                picture = render_heatmap(
                    image.convert("RGB"),
                    row.map,
                    width,
                    height - 1,
                    coverage=report.coverage,
                    ascii=self.ascii_only,
                )
        except OSError:  # the image moved: the map alone
            picture = render_heatmap(None, row.map, width, height - 1)
        static.update(Text.assemble(caption, picture))
