"""Cost estimates and progress for quadratic work (docs/design.md §10).

Every quadratic computation states its flops up front; `Work` turns them into seconds for
the chosen backend (a measured product throughput times OVERHEAD for the reductions that
follow each product). Past LONG_SECONDS it prints the estimate and shows a rich progress
bar with an ETA on stderr; short work stays silent. Ctrl-C raises KeyboardInterrupt out
of the next block, the bar is closed, and the CLI exits 130 with one line.

A command run as a TUI job has `MGAP_WORK_FILE` set: every `Work` (and every `phase`) then
also keeps a small JSON file there, replaced atomically at most every WRITE_S seconds,
with the label, units done of the total, elapsed seconds and ETA, which the Jobs pane and
the Results view read (the rich bar itself only reaches the job's log).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from mgap.engine.compute.backend import Backend

#: seconds of estimated work above which the estimate and a progress bar are shown
LONG_SECONDS = 30.0
#: wall time per product flop relative to the bare product (counting, exp, sums)
OVERHEAD = 1.5
#: environment variable naming the progress file a job keeps (set by the TUI)
WORK_FILE_ENV = "MGAP_WORK_FILE"
#: seconds between two writes of that file
WRITE_S = 0.5


def work_file() -> Path | None:
    value = os.environ.get(WORK_FILE_ENV, "").strip()
    return Path(value) if value else None


def write_work(**fields: object) -> None:
    """Replace the job's progress file with `fields` (no-op outside a job)."""
    path = work_file()
    if path is None:
        return
    try:  # an unpredictable new name (O_EXCL), renamed over the file: no link is followed
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:  # progress is a courtesy: a full or read-only disk must not stop the job
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({**fields, "updated": time.time()}))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def phase(label: str) -> None:
    """Name the step a job is in when it has no measurable fraction (reading, O(n·d) sums)."""
    write_work(label=label, done=0, total=0, elapsed_s=0.0, eta_s=None)


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Work:
    """A context for one quadratic computation: `advance(units)` after each block."""

    def __init__(self, label: str, total: int, flops: float, backend: Backend) -> None:
        self.label, self.total = label, int(total)
        self.seconds = backend.estimate_seconds(flops) * OVERHEAD if flops > 0 else 0.0
        self.device = backend.device
        self._bar: Any = None
        self._task: Any = None
        self.done = 0
        self._started = self._written = time.monotonic()

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < WRITE_S:
            return
        self._written = now
        elapsed = now - self._started
        if self.done > 0:
            eta = elapsed / self.done * max(self.total - self.done, 0)
        else:
            eta = self.seconds
        write_work(
            label=self.label,
            done=self.done,
            total=self.total,
            elapsed_s=elapsed,
            eta_s=eta,
            device=self.device,
        )

    def __enter__(self) -> Work:
        self._started = time.monotonic()
        self._write(force=True)
        if self.seconds > LONG_SECONDS:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            console = Console(stderr=True)
            console.print(
                f"{self.label}: about {format_seconds(self.seconds)} on {self.device} "
                "(Ctrl-C stops; --sample N estimates faster)",
                highlight=False,
            )
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def advance(self, units: int) -> None:
        self.done += int(units)
        self._write()
        if self._bar is not None:
            self._bar.advance(self._task, units)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.done = self.total
            self._write(force=True)
        if self._bar is not None:
            self._bar.stop()
