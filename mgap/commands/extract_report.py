"""What `mgap extract` shows while it runs and when it ends (stderr; stdout for --json)."""

from __future__ import annotations

import sys
import time
from typing import Any

from mgap.output import note, print_json


class Reporter:
    """A rich bar on a terminal, a plain line every few seconds otherwise (logs, the TUI)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.tasks: dict[str, Any] = {}
        self.last_line = 0.0

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if self.quiet:
            return
        if event == "start":
            note(
                f"mgap extract: {data['dataset']}/{data['split']}, {data['n_images']} images, "
                f"{len(data['models'])} model(s), device {data['device']}"
            )
        elif event == "note":
            note(f"mgap extract: {data['message']}")
        elif event == "progress":
            self._progress(data)

    def _progress(self, d: dict[str, Any]) -> None:
        key = str(d["model"])
        phase = d.get("phase", "")
        if phase == "texts":
            done, total = d["texts_done"], d["n_texts"]
        else:
            done, total = d.get("rows_seen", d["images_done"]), d["n_images"]
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self.bar is None:
                self.bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[rate]}"),
                    TimeRemainingColumn(),
                    transient=False,
                    console=None,
                )
                self.bar.start()
            task = self.tasks.get(key + phase)
            desc = f"{key} {phase}"
            rate = f"{d['images_per_s']:.1f} img/s" if d.get("images_per_s") else ""
            if task is None:
                task = self.tasks[key + phase] = self.bar.add_task(desc, total=total, rate=rate)
            self.bar.update(task, completed=done, rate=rate)
            if phase == "done":
                self.bar.stop()
            return
        now = time.time()
        if phase == "done" or now - self.last_line > 5 or done == total:
            self.last_line = now
            rate = f", {d['images_per_s']:.1f} img/s" if d.get("images_per_s") else ""
            note(f"mgap extract: {key} {phase} {done}/{total}{rate}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def print_summary(summaries: list[Any], json_out: bool, quiet: bool) -> str:
    """The JSON document or one line per store; returns the overall status."""
    status = "complete" if all(s.status == "complete" for s in summaries) else summaries[0].status
    if json_out:
        from mgap.engine.reports.pipeline import ExtractReport

        print_json(ExtractReport.build(status=status, stores=list(summaries)).to_json())
    elif not quiet:
        for s in summaries:
            extra = f" ({s.note})" if s.note else ""
            note(
                f"{s.status}: {s.store}: {s.n_images} images, {s.n_texts} texts, {s.skipped} skipped, "
                f"{s.images_per_s:.1f} img/s on {s.device}{extra}"
            )
    return status
