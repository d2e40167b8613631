"""Jobs pane: detached extraction and analysis processes, live progress, cancel, log tail."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from mgap.tui.analysis_jobs import cancel as cancel_analysis
from mgap.tui.analysis_jobs import cancel_refusal as analysis_refusal
from mgap.tui.analysis_jobs import is_job_file, job_rows
from mgap.tui.jobs import (
    JobRow,
    LaunchedJob,
    cancel_job,
    cancel_refusal,
    format_eta,
    progress_bar,
    scan_jobs,
    tail,
)
from mgap.tui.messages import JobsScanned
from mgap.tui.workers import WorkerHost

#: seconds between polls of the progress files
POLL_S = 1.0


def _at(rows: list[JobRow], cursor: int) -> JobRow | None:
    return rows[min(max(cursor, 0), len(rows) - 1)] if rows else None


def scan(store_dir: Path, launched: list[LaunchedJob], cursor: int) -> JobsScanned:
    """The job rows and the log tail of the row under the cursor (runs in a worker)."""
    rows = scan_jobs(store_dir, launched) + job_rows(store_dir)
    rows.sort(key=lambda row: not row.running)  # stable: running first, each kind's order kept
    current = _at(rows, cursor)
    return JobsScanned(rows, tail(current.log, 4) if current is not None else [])


class JobsPane(WorkerHost, Vertical):
    """Rows come from `<store>.progress.json` files, so jobs started elsewhere show too."""

    WORKER_TITLE = "Jobs"
    WORKER_LABELS = {"jobs": "scan"}

    BINDINGS = [
        Binding("x", "cancel", "Cancel job", id="jobs.cancel"),
    ]

    class Finished(Message):
        """A job this pane saw running has stopped (the store list is stale)."""

        def __init__(self, row: JobRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, store_dir: Path, ascii_only: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store_dir = store_dir
        self.ascii_only = ascii_only
        self.launched: list[LaunchedJob] = []
        self.rows: list[JobRow] = []
        self._was_running: set[str] = set()
        self._detail_text = ""

    def compose(self) -> ComposeResult:
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="job-detail", classes="detail")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "store", "status", "progress", "img/s", "ETA", "device", "pid"
        )
        self.poll()
        self.set_interval(POLL_S, self.poll)

    def focus_default(self) -> None:
        self.query_one(DataTable).focus()

    def add_launched(self, job: LaunchedJob) -> None:
        self.launched.append(job)
        self.poll()

    def poll(self) -> None:
        cursor, launched = self.query_one(DataTable).cursor_row, list(self.launched)
        self.start_worker("jobs", lambda: scan(self.store_dir, launched, cursor))

    def on_jobs_scanned(self, message: JobsScanned) -> None:
        self._show(message.rows, message.log_lines)

    def _current_row(self) -> JobRow | None:
        return _at(self.rows, self.query_one(DataTable).cursor_row)

    def _cells(self, row: JobRow) -> tuple[str, ...]:
        bar = progress_bar(row.fraction, 10, self.ascii_only) if row.total else row.phase or "-"
        speed = "-" if row.images_per_s is None else f"{row.images_per_s:.1f}"
        return (
            row.name,
            row.status,
            bar,
            speed,
            format_eta(row.eta_s) if row.running else "-",
            row.device or "-",
            "-" if row.pid is None else str(row.pid),
        )

    def _show(self, rows: list[JobRow], log_lines: list[str]) -> None:
        table = self.query_one(DataTable)
        keys = [r.key for r in rows]
        if keys != [r.key for r in self.rows]:
            cursor = table.cursor_row
            table.clear()
            for row in rows:
                table.add_row(*self._cells(row), key=row.key)
            if rows:
                table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        else:  # same rows: touch only the cells that changed (polled every second)
            for old, row in zip(self.rows, rows, strict=True):
                cells = zip(table.ordered_columns, self._cells(old), self._cells(row), strict=True)
                for column, before, after in cells:
                    if before != after:
                        table.update_cell(row.key, column.key, after)
        self.rows = rows
        self._detail(log_lines)
        running = {r.key for r in rows if r.running}
        for row in rows:
            if row.key in self._was_running and row.key not in running:
                self.post_message(self.Finished(row))
        self._was_running = running

    def _detail(self, log_lines: list[str]) -> None:
        row = self._current_row()
        if row is None:
            text = "no jobs yet · pick models and datasets, then press e to extract"
        else:
            head = f"{row.name} · {row.status}" + (f" · {row.error}" if row.error else "")
            if row.running and is_job_file(row.key):  # an analysis job: its step and elapsed
                head += f" · {row.phase}"
            text = "\n".join([head, f"log: {row.log or '-'}", *log_lines])
        if text != self._detail_text:  # polled every second: repaint only on change
            self._detail_text = text
            self.query_one("#job-detail", Static).update(Text(text), layout=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.poll()

    def action_cancel(self) -> None:
        row = self._current_row()
        if row is None or row.pid is None or not row.running:
            self.app.notify("no running job under the cursor", severity="warning")
            return
        if is_job_file(row.key):
            self._cancel_analysis(row)
            return
        progress_file = None if row.key.startswith("pid:") else row.key
        if cancel_job(row.pid, progress_file):
            self.app.notify(
                f"cancel sent to pid {row.pid}: it stops after the block in flight",
                title="Jobs",
            )
        elif progress_file is not None:
            reason = cancel_refusal(row.pid, progress_file) or "it has exited"
            self.app.notify(
                f"pid {row.pid} is not provably the mgap job of {row.name} ({reason}): "
                "nothing sent",
                severity="warning",
            )
        self.poll()

    def _cancel_analysis(self, row: JobRow) -> None:
        if cancel_analysis(row.key):
            self.app.notify(f"cancelled {row.name} (pid {row.pid})", title="Jobs")
        else:
            reason = analysis_refusal(row.key) or "it has exited"
            self.app.notify(
                f"pid {row.pid} is not provably the job of {row.name} ({reason}): nothing sent",
                severity="warning",
            )
        self.poll()
