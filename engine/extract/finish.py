"""Progress, signals and the end of a run: what the TUI and the CLI see of a job.

Progress goes to a JSON file next to each store (the TUI's view of the job) and to a
`reporter` callback (the CLI's bar). SIGTERM or SIGINT stops the job after the block in
flight; a second one stops it at once. A full disk stops the run without touching the
store's metadata, so the same command resumes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from mgap.engine.datasets import Manifest
from mgap.engine.extract.prepare import StoreTarget
from mgap.engine.reports.pipeline import ExtractedStore
from mgap.store import schema as S
from mgap.store.process import process_identity
from mgap.store.progress import write_progress
from mgap.store.reader import Store

Reporter = Callable[[str, dict[str, Any]], None]
#: the run status when the disk filled up (the store itself stays "partial")
STATUS_DISK_FULL = "disk-full"


class StopRequested(Exception):
    """SIGTERM/SIGINT arrived: stop after the block in flight."""


class StopFlag:
    """Set by SIGTERM/SIGINT while `installed`; the job checks it after each block."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.stop = False

    def check(self) -> None:
        """Raise StopRequested if a stop was asked for."""
        if self.stop:
            raise StopRequested

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop:  # a second Ctrl-C: stop now, the block in flight is lost
            raise KeyboardInterrupt
        self.stop = True
        self.reporter("note", {"message": "stopping after the block in flight"})


class Progress:
    """Writes each store's progress file and tells the reporter."""

    def __init__(
        self, reporter: Reporter, manifest: Manifest, device: str, command: str, started: float
    ) -> None:
        self.reporter = reporter
        self.manifest = manifest
        self.device = device
        self.command = command
        #: when the job began (before its models loaded): the stores' `seconds` count from it
        self.started = started

    def __call__(self, target: StoreTarget, **fields: Any) -> None:
        manifest = self.manifest
        doc = dict(
            pid=os.getpid(),
            model=target.model.spec.text,
            dataset=manifest.dataset,
            split=manifest.split,
            store=str(target.path),
            n_images=len(manifest.records),
            n_texts=target.writer.n_texts if target.writer else 0,
            images_done=target.images_done,
            texts_done=target.texts_done,
            skipped=target.skipped,
            device=self.device,
            started=self.started,
            command=self.command,
            **process_identity(),
        )
        doc.update(fields)
        write_progress(target.path, **doc)
        self.reporter("progress", doc)

    def images(self, targets: list[StoreTarget], last: int, rate: float) -> None:
        """The image pass has reached row `last` at `rate` images/s."""
        n = len(self.manifest.records)
        for t in targets:
            self(
                t,
                status="running",
                phase="images",
                images_per_s=rate,
                rows_seen=last,
                eta_s=(n - last) / rate if rate > 0 else None,
            )


def finish_stores(
    targets: list[StoreTarget], progress: Progress, status: str, error: str, images_per_s: float
) -> None:
    """Give every store the run's final status (a full disk leaves them partial)."""
    elapsed = time.time() - progress.started
    for t in targets:
        if t.writer is None:
            continue
        if status == STATUS_DISK_FULL:
            # nothing more goes into the store: it stays partial and resumable
            with contextlib.suppress(OSError):
                progress(t, status=S.STATUS_FAILED, phase="done", error=error)
            continue
        if status == S.STATUS_COMPLETE:
            t.writer.finish(S.STATUS_COMPLETE, seconds=round(elapsed, 3))
        elif status == S.STATUS_FAILED:
            t.writer.finish(S.STATUS_FAILED, error=error[:500])
        else:
            t.writer.finish(S.STATUS_PARTIAL)
        progress(t, status=status, phase="done", error=error, images_per_s=images_per_s, eta_s=0)


def store_summary(
    t: StoreTarget, progress: Progress, status: str, images_per_s: float, dtype: str
) -> ExtractedStore:
    """What the run did to `t`'s store (its own status when this run did not write it)."""
    store = Store(t.path)
    return ExtractedStore(
        store=str(t.path),
        model=t.model.spec.text,
        status=store.status if t.writer is None else status,
        n_images=store.n_images,
        n_texts=store.n_texts,
        skipped=len(store.skipped),
        seconds=round(time.time() - progress.started, 3),
        images_per_s=round(images_per_s, 2),
        device=progress.device,
        dtype=dtype,
        note=t.note,
    )
