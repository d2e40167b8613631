"""One worker model for every pane: busy state read from the running workers, failures in one place.

A pane mixes in `WorkerHost` and starts its computations with `start_worker(group, fn)`:
one exclusive thread worker per group, so a newer request cancels the older one. The pane
never keeps its own "busy" set: `busy` asks the app's worker manager which of the pane's
workers are still pending or running, so a cancelled or stale computation can never leave
a status stuck. The one `Worker.StateChanged` handler posts the message a worker returned,
or a `WorkerFailed` with a one-line reason, then calls `workers_changed` for the status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from textual.message import Message
from textual.worker import Worker, WorkerState

from mgap.core.errors import MgapError
from mgap.tui.messages import WorkerFailed

ACTIVE = (WorkerState.PENDING, WorkerState.RUNNING)
FINISHED = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


def error_text(exc: BaseException | None) -> str:
    """One line for a notification: mgap's own message, or the exception's type and text."""
    if isinstance(exc, MgapError):
        return exc.one_line()
    return f"{type(exc).__name__}: {exc}"


class WorkerHost:
    """Mixin for Textual widgets (listed before the widget class) that compute in threads."""

    #: the notification title's first part, e.g. "Results"
    WORKER_TITLE: ClassVar[str] = ""
    #: worker group -> the word the status line and notifications use
    WORKER_LABELS: ClassVar[Mapping[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._worker_keys: dict[Worker, Any] = {}

    def start_worker(
        self, group: str, work: Callable[[], Message | None], key: Any = None
    ) -> Worker:
        """Run `work` in a thread, cancelling the group's previous worker; `key` says what for."""
        worker = self.run_worker(  # type: ignore[attr-defined]
            work, name=group, group=group, thread=True, exclusive=True, exit_on_error=False
        )
        self._worker_keys[worker] = key
        self.workers_changed()
        return worker

    def cancel_workers(self, *groups: str) -> None:
        """Drop what these groups are computing (their results would be stale)."""
        for group in groups:
            self.workers.cancel_group(self, group)  # type: ignore[attr-defined]
        self.workers_changed()

    def label(self, group: str) -> str:
        return self.WORKER_LABELS.get(group, group)

    @property
    def busy(self) -> set[str]:
        """Labels of this widget's workers that are still pending or running."""
        return {
            self.label(w.group)
            for w in self.workers  # type: ignore[attr-defined]
            if w.node is self and w.state in ACTIVE and not w.is_cancelled
        }

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.SUCCESS and isinstance(worker.result, Message):
            self.post_message(worker.result)  # type: ignore[attr-defined]
        elif event.state is WorkerState.ERROR:
            label = self.label(worker.group)
            title = f"{self.WORKER_TITLE}: {label}" if self.WORKER_TITLE else label
            key = self._worker_keys.get(worker)
            failed = WorkerFailed(title, error_text(worker.error), worker.group, key)
            self.post_message(failed)  # type: ignore[attr-defined]
        if event.state in FINISHED:
            self._worker_keys.pop(worker, None)
        self.workers_changed()

    def workers_changed(self) -> None:
        """Called whenever a worker starts, stops or is cancelled: redraw a status here."""
