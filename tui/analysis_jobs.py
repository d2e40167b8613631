"""Retrieval of a large store as a detached `mgap retrieval` job, read back from the cache.

Textual-free, like `tui/jobs.py`. Above `job_pairs()` (image, caption) pairs the Results
pane does not rank retrieval in its own process: it starts `mgap retrieval STORE --json`
in a new session (closing the TUI or an SSH drop does not stop it), that process writes
its ranks into the store's sidecar cache (`store/cache.py`), and the pane then reads the
report from the cache, which loads row indices only, never the embeddings. Beside the
store, `<store>.retrieval.progress.json` records the pid, command line and start time
(so the Jobs pane lists the job and cancels it only after checking the pid is still
that process, and a restarted TUI waits for it instead of starting another),
`<store>.retrieval.log` its stderr and `<store>.retrieval.json` its report.
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
from pathlib import Path

from mgap.core.errors import MgapError
from mgap.store.process import command_line, is_extract_of, start_ticks
from mgap.store.progress import pid_alive, read_progress, write_progress
from mgap.tui.jobs import JobRow, format_eta, job_environment, last_log_line

#: stores with more image x caption pairs than this rank retrieval in a job process; below
#: it the Results pane's thread worker ranks them in-process (seconds at COCO val's size)
JOB_PAIRS = 500_000_000
#: environment variable overriding JOB_PAIRS (tests lower it)
JOB_PAIRS_ENV = "MGAP_TUI_JOB_PAIRS"
#: the analysis a job runs: the subcommand and the suffix of its files beside the store
KIND = "retrieval"
#: seconds between checks of a running job
POLL_S = 0.5


def job_pairs() -> int:
    """The pair count above which retrieval runs as a job (MGAP_TUI_JOB_PAIRS overrides)."""
    value = os.environ.get(JOB_PAIRS_ENV, "").strip()
    return int(value) if value.isdigit() else JOB_PAIRS


def wants_job(n_images: int, n_texts: int) -> bool:
    return n_images * n_texts > job_pairs()


def job_target(store: Path) -> Path:
    """`<store>.retrieval`: its `.progress.json`, `.log` and `.json` are the job's files."""
    return store.with_name(f"{store.name}.{KIND}")


def progress_file(store: Path) -> Path:
    return job_target(store).with_name(f"{job_target(store).name}.progress.json")


def is_job_file(path: str | Path) -> bool:
    return str(path).endswith(f".h5.{KIND}.progress.json")


def _suffixed(store: Path, suffix: str) -> Path:
    return job_target(store).with_name(job_target(store).name + suffix)


def retrieval_command(store: Path, sample: int | None) -> list[str]:
    """`mgap retrieval STORE --json`, with the seeded sample the TUI reads back (seed 0)."""
    command = [sys.executable, "-m", "mgap", KIND, str(store), "--json"]
    if sample is not None:
        command += ["--sample", str(sample), "--seed", "0"]
    return command


def launch(store: Path, sample: int | None) -> int:
    """Start the job detached and record it in its progress file; returns its pid."""
    store = Path(store).absolute()  # not resolved: the cache goes beside the path the TUI reads
    command = retrieval_command(store, sample)
    with (
        _suffixed(store, ".log").open("ab") as log,
        _suffixed(store, ".json").open("wb") as out,
    ):
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env=job_environment(),
        )
    # reap it when it exits, so a finished job is not a zombie that looks alive
    threading.Thread(target=process.wait, daemon=True).start()
    write_progress(
        job_target(store),
        pid=process.pid,
        status="running",
        phase=KIND,
        store=str(store),
        command=command,
        cmdline=command_line(process.pid) or [],
        proc_start=start_ticks(process.pid),
        started=time.time(),
        sample=sample,
        error="",
    )
    return process.pid


def _doc(store: Path) -> dict[str, object] | None:
    return read_progress(job_target(store))


def _alive(doc: dict[str, object] | None) -> bool:
    """Whether the job `doc` records is running and its pid is still that process."""
    if not doc or doc.get("status") != "running":
        return False
    pid, store = doc.get("pid"), Path(str(doc.get("store")))
    return isinstance(pid, int) and pid_alive(pid) and is_extract_of(pid, doc, store)


def _output_ok(store: Path) -> bool:
    try:
        json.loads(_suffixed(store, ".json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return True


def _final_status(store: Path, doc: dict[str, object]) -> str:
    """A job no longer alive: cancelled as recorded, complete when its report was written."""
    if doc.get("status") != "running":
        return str(doc.get("status", "?"))
    return "complete" if _output_ok(store) else "failed"


def retrieval_via_job(path: Path, cancelled: Callable[[], bool]) -> dict | None:
    """The retrieval report of a large store from its cache, running a job to fill it first.

    Waits (polling, so `cancelled()` ends the wait) for a job already running on the store,
    else starts one. Returns None when the store lacks a side or the wait was cancelled;
    the job itself keeps running and its result stays in the cache for next time.
    """
    from mgap.engine.analysis.retrieval import (
        has_cached_ranks,
        interactive_sample,
        retrieval_report,
    )
    from mgap.store import open_store

    store = open_store(path)
    if not (store.has_images and store.has_texts):
        return None
    sample = interactive_sample(store)
    if not has_cached_ranks(store, sample=sample):
        if not _alive(_doc(store.path)):
            launch(store.path, sample)
        while _alive(_doc(store.path)):
            if cancelled():
                return None
            time.sleep(POLL_S)
        doc = _doc(store.path) or {}
        status = _final_status(store.path, doc)
        if doc.get("status") == "running":  # record how it ended for the Jobs pane
            write_progress(job_target(store.path), status=status)
        if not has_cached_ranks(store, sample=sample):
            log_line = last_log_line(_suffixed(store.path, ".log"))
            reason = log_line if status == "failed" and log_line else status
            raise MgapError(
                f"the retrieval job of {store.path.name} ended without a result ({reason})",
                hint=f"see {_suffixed(store.path, '.log')}",
            )
    return retrieval_report(store, sample=sample)


def cancel(progress: str | Path) -> bool:
    """SIGTERM the job of this progress file if its pid is still that job; mark it cancelled."""
    store = Path(str(progress).removesuffix(f".{KIND}.progress.json"))
    doc = _doc(store)
    pid = doc.get("pid") if doc is not None else None
    if not isinstance(pid, int) or not _alive(doc):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    write_progress(job_target(store), status="cancelled", error="cancelled from the TUI")
    return True


def job_rows(store_dir: Path) -> list[JobRow]:
    """One Jobs-pane row per retrieval job recorded beside the stores of `store_dir`."""
    rows = []
    for path in sorted(Path(store_dir).glob(f"*.h5.{KIND}.progress.json")):
        store = Path(str(path).removesuffix(f".{KIND}.progress.json"))
        doc = _doc(store)
        if doc is None:
            continue
        running = _alive(doc)
        status = "running" if running else _final_status(store, doc)
        pid = doc.get("pid")
        started = doc.get("started")
        elapsed = time.time() - started if isinstance(started, int | float) else None
        log = _suffixed(store, ".log")
        rows.append(
            JobRow(
                key=str(path),
                name=f"{store.name} · {KIND}",
                status=status,
                pid=pid if isinstance(pid, int) else None,
                done=0,
                total=0,
                images_per_s=None,
                eta_s=None,
                device="",
                phase=f"{KIND} {format_eta(elapsed)}" if running else KIND,
                error=str(doc.get("error") or "")
                or ("" if status != "failed" else last_log_line(log)),
                log=log if log.exists() else None,
                running=running,
            )
        )
    return rows
