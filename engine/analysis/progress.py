"""Cost estimates and progress for quadratic work (DESIGN.md §10).

Every quadratic computation states its flops up front; `Work` turns them into seconds for
the chosen backend (a measured product throughput times OVERHEAD for the reductions that
follow each product). Past LONG_SECONDS it prints the estimate and shows a rich progress
bar with an ETA on stderr; short work stays silent. Ctrl-C raises KeyboardInterrupt out
of the next block, the bar is closed, and the CLI exits 130 with one line.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from mgap.engine.analysis.backend import Backend

#: seconds of estimated work above which the estimate and a progress bar are shown
LONG_SECONDS = 30.0
#: wall time per product flop relative to the bare product (counting, exp, sums)
OVERHEAD = 1.5


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

    def __enter__(self) -> Work:
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
        if self._bar is not None:
            self._bar.advance(self._task, units)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
