"""Extraction jobs as detached processes, watched through their progress files.

Textual-free so the Jobs pane, the benchmark and the tests share it. A job is one
`mgap extract` process (one dataset, one or more models) started by `tui/launcher.py` in
its own session, so closing the TUI or dropping the SSH connection never stops it; its
stdout/stderr go to a log next to the first store. The TUI learns everything else from
`<store>.progress.json`, which is also how a restarted TUI re-attaches; it cancels a pid
only once it is provably the mgap job of that store (`store/process.py`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mgap.core.errors import MgapError, UsageError
from mgap.store.naming import sidecar, store_filename
from mgap.store.process import job_mismatch
from mgap.store.progress import find_progress_files, is_running, pid_alive, read_progress
from mgap.tui.launcher import launch_detached

#: final statuses that are a success (the Jobs pane's notification is not a warning)
ALREADY_COMPLETE = "already complete"
FINISHED_OK = ("complete", ALREADY_COMPLETE)


@dataclass(frozen=True)
class DatasetChoice:
    """One dataset picked in the Datasets pane: what `mgap extract` needs to read it."""

    name: str
    kind: str
    root: Path | None
    split: str
    limit: int | None = None


@dataclass
class LaunchedJob:
    """A job this TUI started; kept until its progress files take over or it exits."""

    pid: int
    command: list[str]
    log: Path
    dataset: str
    models: list[str]
    started: float
    process: subprocess.Popen | None = field(default=None, repr=False)
    #: the stores the job writes, one per model
    stores: tuple[Path, ...] = ()

    def returncode(self) -> int | None:
        """Exit status once finished (reaps the child), None while it runs."""
        if self.process is not None:
            return self.process.poll()
        return None if pid_alive(self.pid) else -1


@dataclass
class JobRow:
    """What the Jobs pane shows for one store being (or having been) extracted."""

    key: str
    name: str
    status: str
    pid: int | None
    done: int
    total: int
    images_per_s: float | None
    eta_s: float | None
    device: str
    phase: str
    error: str
    log: Path | None
    running: bool

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def extract_command(
    models: list[str], dataset: DatasetChoice, store_dir: Path, device: str = "auto"
) -> list[str]:
    """The `mgap extract` command line for one dataset and every selected model."""
    if not models:
        raise UsageError("no model selected", hint="pick one in the Models pane with space")
    command = [sys.executable, "-m", "mgap", "extract"]
    for spec in models:
        command += ["--model", spec]
    command += ["--dataset", dataset.kind, "--split", dataset.split]
    if dataset.root is not None:
        command += ["--data-root", str(dataset.root)]
    if dataset.limit is not None:
        command += ["--limit", str(dataset.limit)]
    command += ["--store-dir", str(store_dir), "--device", device]
    return command


def log_path(models: list[str], dataset: DatasetChoice, store_dir: Path) -> Path:
    """`<first store>.log`: found again by a restarted TUI from the progress file's store."""
    return sidecar(store_dir / store_filename(dataset.kind, dataset.split, models[0]), ".log")


def launch_extract(
    models: list[str], dataset: DatasetChoice, store_dir: Path, device: str = "auto"
) -> LaunchedJob:
    """Start `mgap extract` detached (`launch_detached`), its output to the log file."""
    store_dir = Path(store_dir).resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    command = extract_command(models, dataset, store_dir, device)
    log = log_path(models, dataset, store_dir)
    process = launch_detached(command, log).process
    stores = tuple(store_dir / store_filename(dataset.kind, dataset.split, m) for m in models)
    return LaunchedJob(
        process.pid, command, log, dataset.name, list(models), time.time(), process, stores
    )


def all_complete(stores: tuple[Path, ...]) -> bool:
    """Whether every store exists and says complete (a job that found them so wrote nothing)."""
    from mgap.store.reader import Store

    try:
        return bool(stores) and all(Store(p).status == "complete" for p in stores)
    except (MgapError, OSError):
        return False


def exit_status(job: LaunchedJob, code: int) -> str:
    """The status of a launched job that exited without writing a progress file of its own.

    `mgap extract` writes progress only for stores it extracts, so exit 0 with every store
    complete means they were already complete; otherwise the log says what happened.
    """
    if code:
        return "failed"
    return ALREADY_COMPLETE if all_complete(job.stores) else "exited"


def cancel_refusal(pid: int, progress_file: str | Path) -> str | None:
    """Why `pid` may not be signalled for this progress file (None: it is provably the
    mgap job of that store, `store/process.py`)."""
    store = Path(str(progress_file).removesuffix(".progress.json"))
    doc = read_progress(store)
    return "its progress file is unreadable" if doc is None else job_mismatch(pid, doc, store)


def cancel_job(pid: int, progress_file: str | Path | None = None) -> bool:
    """SIGTERM the job: it stops after the block in flight and marks itself cancelled.

    With a progress file, the pid is signalled only if `cancel_refusal` finds no reason
    not to; without one it is a job this TUI launched and still holds.
    """
    if progress_file is not None and cancel_refusal(pid, progress_file) is not None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def _row_from_progress(path: Path, doc: dict[str, object]) -> JobRow:
    store = Path(str(doc.get("store") or path.name.removesuffix(".progress.json")))
    store_path = store if store.is_absolute() else path.with_name(store.name)
    running = is_running(doc)
    status = str(doc.get("status", "?"))
    if status in ("starting", "running") and not running:
        status = "lost"  # the process is gone without writing a final status
    pid = doc.get("pid")
    log = sidecar(store_path, ".log")
    return JobRow(
        key=str(path),
        name=store_path.name,
        status=status,
        pid=pid if isinstance(pid, int) else None,
        done=int(doc.get("images_done") or 0),
        total=int(doc.get("n_images") or 0),
        images_per_s=_float(doc.get("images_per_s")),
        eta_s=_float(doc.get("eta_s")),
        device=str(doc.get("device") or ""),
        phase=str(doc.get("phase") or ""),
        error=str(doc.get("error") or ""),
        log=log if log.exists() else None,
        running=running,
    )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def scan_jobs(store_dir: Path, launched: list[LaunchedJob]) -> list[JobRow]:
    """Every job known from progress files, plus launched ones that have none yet.

    Running jobs first, then the most recently updated. A launched job whose process
    exited without a progress file failed before it started: its log says why.
    """
    rows: list[tuple[float, JobRow]] = []
    pids_with_files: set[int] = set()
    logs_by_pid = {job.pid: job.log for job in launched}
    for path in find_progress_files(store_dir):
        doc = read_progress(path.with_name(path.name.removesuffix(".progress.json")))
        if doc is None:
            continue
        row = _row_from_progress(path, doc)
        if row.pid is not None:
            pids_with_files.add(row.pid)
            if row.log is None:
                row.log = logs_by_pid.get(row.pid)
        rows.append((float(doc.get("updated") or 0.0), row))
    for job in launched:
        if job.pid in pids_with_files:
            continue
        code = job.returncode()
        status = "starting" if code is None else exit_status(job, code)
        rows.append(
            (
                job.started,
                JobRow(
                    key=f"pid:{job.pid}",
                    name=f"{job.dataset} × {', '.join(job.models)}",
                    status=status,
                    pid=job.pid,
                    done=0,
                    total=0,
                    images_per_s=None,
                    eta_s=None,
                    device="",
                    phase="",
                    error=last_log_line(job.log) if code else "",
                    log=job.log,
                    running=code is None,
                ),
            )
        )
    rows.sort(key=lambda item: (not item[1].running, -item[0]))
    return [row for _, row in rows]


def last_log_line(log: Path | None) -> str:
    lines = tail(log, 1)
    return lines[-1] if lines else ""


def tail(log: Path | None, n: int = 5, max_bytes: int = 8192) -> list[str]:
    """The last `n` non-empty lines of a log, reading only its end."""
    if log is None or not log.exists():
        return []
    with log.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read().decode("utf-8", errors="replace")
    # progress bars rewrite one line with carriage returns: keep the latest state
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in data.splitlines()]
    return [line for line in lines if line][-n:]


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_bar(fraction: float, width: int = 10, ascii_only: bool = False) -> str:
    """A fixed-width text bar with its percentage, e.g. `█████░░░░░  50%`."""
    full, empty = ("#", "-") if ascii_only else ("█", "░")
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return f"{full * filled}{empty * (width - filled)} {fraction * 100:3.0f}%"
