"""Analyses of a large store as detached `mgap` jobs (retrieval, gap), read back from the cache.

Textual-free, like `tui/jobs.py`. Above `job_pairs()` (image, caption) pairs the Results
pane does not analyse the store in its own process: it starts `mgap retrieval STORE
--json` (and `mgap gap ...`, `tui/gap_job.py`) in a new session (closing the TUI or an SSH
drop does not stop it), that process writes its result into the store's sidecar cache
(`store/cache.py`), and the pane then reads the report from the cache, never the
embeddings. Both job kinds start through `tui/launcher.py`. Beside the store,
`<store>.<kind>.progress.json` records the pid, command line, start time and the digest of
the job's token (so the Jobs pane lists the job and cancels it only once the pid is
provably that job, `store/process.py`, and a restarted TUI waits for it instead of
starting another),
`<store>.<kind>.log` its stderr, `<store>.<kind>.json` its report, and
`<store>.<kind>.work.json` its progress (written by the job's `studies.work.Work`, through
MGAP_WORK_FILE: the step, units done of the total, ETA).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mgap.core.errors import MgapError
from mgap.engine.studies.work import WORK_FILE_ENV
from mgap.store.process import command_line, is_job_of, job_mismatch, start_ticks
from mgap.store.progress import pid_alive, read_progress, write_progress
from mgap.tui.jobs import JobRow, format_eta, last_log_line
from mgap.tui.launcher import launch_detached

#: stores with more image x caption pairs than this rank retrieval in a job process; below
#: it the Results pane's thread worker ranks them in-process (seconds at COCO val's size)
JOB_PAIRS = 500_000_000
#: environment variable overriding JOB_PAIRS (tests lower it)
JOB_PAIRS_ENV = "MGAP_TUI_JOB_PAIRS"
#: the analyses that run as jobs: each is the subcommand and the suffix of its files
RETRIEVAL = "retrieval"
GAP = "gap"
KINDS = (RETRIEVAL, GAP)
#: seconds between checks of a running job
POLL_S = 0.5
#: seconds a new job may take to exec its command (see `_exec_cmdline`)
EXEC_WAIT_S = 10.0


def job_pairs() -> int:
    """The pair count above which retrieval runs as a job (MGAP_TUI_JOB_PAIRS overrides)."""
    value = os.environ.get(JOB_PAIRS_ENV, "").strip()
    return int(value) if value.isdigit() else JOB_PAIRS


def wants_job(n_images: int, n_texts: int) -> bool:
    return n_images * n_texts > job_pairs()


@dataclass(frozen=True)
class WorkProgress:
    """What a running job last wrote to its work file: the step and how far it got."""

    pid: int | None
    label: str
    done: int
    total: int
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


def job_target(store: Path, kind: str = RETRIEVAL) -> Path:
    """`<store>.<kind>`: its `.progress.json`, `.log`, `.json` and `.work.json` are the job's."""
    return store.with_name(f"{store.name}.{kind}")


def progress_file(store: Path, kind: str = RETRIEVAL) -> Path:
    return _suffixed(store, ".progress.json", kind)


def work_file(store: Path, kind: str = RETRIEVAL) -> Path:
    return _suffixed(store, ".work.json", kind)


def _kind_of(progress: str | Path) -> str | None:
    return next((k for k in KINDS if str(progress).endswith(f".h5.{k}.progress.json")), None)


def is_job_file(path: str | Path) -> bool:
    return _kind_of(path) is not None


def _suffixed(store: Path, suffix: str, kind: str = RETRIEVAL) -> Path:
    target = job_target(store, kind)
    return target.with_name(target.name + suffix)


def retrieval_command(store: Path, sample: int | None) -> list[str]:
    """`mgap retrieval STORE --json`, with the seeded sample the TUI reads back (seed 0)."""
    command = [sys.executable, "-m", "mgap", RETRIEVAL, str(store), "--json"]
    if sample is not None:
        command += ["--sample", str(sample), "--seed", "0"]
    return command


def launch(store: Path, sample: int | None) -> int:
    """Start the retrieval job of `store` (see `start_job`); returns its pid."""
    store = Path(store).absolute()
    return start_job(store, RETRIEVAL, retrieval_command(store, sample))


def start_job(store: Path, kind: str, command: list[str]) -> int:
    """Start `command` detached (`launch_detached`) and record it in its progress file,
    with the digest of its job token; returns its pid."""
    store = Path(store).absolute()  # not resolved: the cache goes beside the path the TUI reads
    work_file(store, kind).unlink(missing_ok=True)
    job = launch_detached(
        command,
        _suffixed(store, ".log", kind),
        stdout=_suffixed(store, ".json", kind),
        env={WORK_FILE_ENV: str(work_file(store, kind))},
    )
    process = job.process
    cmdline = _exec_cmdline(process, command)
    # reap it when it exits, so a finished job is not a zombie that looks alive
    threading.Thread(target=process.wait, daemon=True).start()
    write_progress(
        job_target(store, kind),
        pid=process.pid,
        status="running",
        phase=kind,
        store=str(store),
        command=command,
        cmdline=cmdline,
        proc_start=start_ticks(process.pid),
        job_token_sha256=job.token_sha256,
        started=time.time(),
        error="",
    )
    return process.pid


def _exec_cmdline(process: subprocess.Popen, command: list[str]) -> list[str]:
    """The child's command line once it has exec'd `command`: right after the fork /proc
    still shows the parent's (empty on a loaded machine), and the job's identity check
    compares against what is recorded here. Waits at most EXEC_WAIT_S."""
    if not Path("/proc/self/cmdline").exists():  # nothing to read (and to check) here
        return []
    deadline = time.monotonic() + EXEC_WAIT_S
    while True:
        cmdline = command_line(process.pid) or []
        if cmdline == command or process.poll() is not None or time.monotonic() > deadline:
            return cmdline
        time.sleep(0.005)


def _doc(store: Path, kind: str = RETRIEVAL) -> dict[str, object] | None:
    return read_progress(job_target(store, kind))


def _alive(doc: dict[str, object] | None) -> bool:
    """Whether the job `doc` records is running and its pid is still that process."""
    if not doc or doc.get("status") != "running":
        return False
    pid, store = doc.get("pid"), Path(str(doc.get("store")))
    return isinstance(pid, int) and pid_alive(pid) and is_job_of(pid, doc, store)


def job_output(store: Path, kind: str) -> dict | None:
    """The JSON report the job printed, or None (not written, or not finished)."""
    try:
        doc = json.loads(_suffixed(store, ".json", kind).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _final_status(store: Path, doc: dict[str, object], kind: str = RETRIEVAL) -> str:
    """A job no longer alive: cancelled as recorded, complete when its report was written."""
    if doc.get("status") != "running":
        return str(doc.get("status", "?"))
    return "complete" if job_output(store, kind) is not None else "failed"


def work_progress(store: Path, kind: str) -> WorkProgress | None:
    """How far the running job of `store` got, from its work file (None: not running)."""
    doc = _doc(store, kind)
    if not _alive(doc):
        return None
    try:
        work = json.loads(work_file(store, kind).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        work = {}
    eta = work.get("eta_s")
    pid = doc.get("pid") if doc else None
    return WorkProgress(
        pid=pid if isinstance(pid, int) else None,
        label=str(work.get("label") or "starting"),
        done=int(work.get("done") or 0),
        total=int(work.get("total") or 0),
        eta_s=float(eta) if isinstance(eta, int | float) else None,
    )


def wait_for_job(
    store: Path,
    kind: str,
    command: Callable[[], list[str]],
    cancelled: Callable[[], bool],
    ready: Callable[[], bool],
    on_poll: Callable[[WorkProgress], None] | None = None,
) -> str | None:
    """Run the `kind` job of `store` to its end: wait for one already running, else start
    `command()`, calling `on_poll` with its progress every POLL_S. Returns how it ended
    (None when the wait was cancelled: the job itself keeps running, its result stays in
    the cache for next time). `ready()` says the result is there already: no job then."""
    if ready():
        return "complete"
    if not _alive(_doc(store, kind)):
        start_job(store, kind, command())
    while _alive(_doc(store, kind)):
        if cancelled():
            return None
        if on_poll is not None:
            progress = work_progress(store, kind)
            if progress is not None:
                on_poll(progress)
        time.sleep(POLL_S)
    doc = _doc(store, kind) or {}
    status = _final_status(store, doc, kind)
    if doc.get("status") == "running":  # record how it ended for the Jobs pane
        write_progress(job_target(store, kind), status=status)
    return status


def job_error(store: Path, kind: str, status: str) -> MgapError:
    """The one-line error of a job that ended without a result, naming its log."""
    log = _suffixed(store, ".log", kind)
    log_line = last_log_line(log)
    reason = log_line if status == "failed" and log_line else status
    return MgapError(
        f"the {kind} job of {store.name} ended without a result ({reason})", hint=f"see {log}"
    )


def retrieval_via_job(
    path: Path,
    cancelled: Callable[[], bool],
    on_poll: Callable[[WorkProgress], None] | None = None,
) -> dict | None:
    """The retrieval report of a large store from its cache, running a job to fill it first.

    Returns None when the store lacks a side or the wait was cancelled (`wait_for_job`).
    """
    from mgap.engine.studies.retrieval import (
        has_cached_ranks,
        interactive_sample,
        retrieval_report,
    )
    from mgap.store import open_store

    store = open_store(path)
    if not (store.has_images and store.has_texts):
        return None
    sample = interactive_sample(store)
    status = wait_for_job(
        store.path,
        RETRIEVAL,
        lambda: retrieval_command(store.path.absolute(), sample),
        cancelled,
        lambda: has_cached_ranks(store, sample=sample),
        on_poll,
    )
    if status is None:
        return None
    if not has_cached_ranks(store, sample=sample):
        raise job_error(store.path, RETRIEVAL, status)
    return retrieval_report(store, sample=sample)


def _signal_target(progress: str | Path) -> tuple[Path, str, int] | str:
    """The store, kind and pid of the job this progress file records, or why that pid
    may not be signalled (it must be provably the mgap job of the store)."""
    kind = _kind_of(progress)
    if kind is None:
        return "not an analysis job's progress file"
    store = Path(str(progress).removesuffix(f".{kind}.progress.json"))
    doc = _doc(store, kind)
    pid = doc.get("pid") if doc is not None else None
    if doc is None or doc.get("status") != "running" or not isinstance(pid, int):
        return "it is not running"
    if not pid_alive(pid):
        return "the process has exited"
    reason = job_mismatch(pid, doc, store)
    return reason if reason is not None else (store, kind, pid)


def cancel_refusal(progress: str | Path) -> str | None:
    """Why the job of this progress file may not be signalled (None: it may)."""
    target = _signal_target(progress)
    return target if isinstance(target, str) else None


def cancel(progress: str | Path) -> bool:
    """SIGTERM the job of this progress file if its pid is provably that job; mark it
    cancelled."""
    target = _signal_target(progress)
    if isinstance(target, str):
        return False
    store, kind, pid = target
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    write_progress(job_target(store, kind), status="cancelled", error="cancelled from the TUI")
    return True


def job_rows(store_dir: Path) -> list[JobRow]:
    """One Jobs-pane row per analysis job recorded beside the stores of `store_dir`."""
    return [
        row
        for kind in KINDS
        for path in sorted(Path(store_dir).glob(f"*.h5.{kind}.progress.json"))
        if (row := _row(Path(str(path).removesuffix(f".{kind}.progress.json")), kind))
    ]


def _row(store: Path, kind: str) -> JobRow | None:
    doc = _doc(store, kind)
    if doc is None:
        return None
    running = _alive(doc)
    status = "running" if running else _final_status(store, doc, kind)
    pid = doc.get("pid")
    started = doc.get("started")
    elapsed = time.time() - started if isinstance(started, int | float) else None
    work = work_progress(store, kind) if running else None
    log = _suffixed(store, ".log", kind)
    return JobRow(
        key=str(progress_file(store, kind)),
        name=f"{store.name} · {kind}",
        status=status,
        pid=pid if isinstance(pid, int) else None,
        done=work.done if work else 0,
        total=work.total if work else 0,
        images_per_s=None,
        eta_s=work.eta_s if work else None,
        device="",
        phase=f"{work.label if work else kind} {format_eta(elapsed)}" if running else kind,
        error=str(doc.get("error") or "") or ("" if status != "failed" else last_log_line(log)),
        log=log if log.exists() else None,
        running=running,
    )
