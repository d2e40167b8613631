"""The gap report of a large store from an `mgap gap` job, read back from the sidecar cache.

Textual-free, like `tui/analysis_jobs.py`, which starts, watches and cancels the job. The
job runs `mgap gap STORE [--by-category] --no-separability --json` with the options the
Results pane shows, and keeps two documents in the cache (`engine/studies/gap_cache.py`):
the O(n·d) summary as soon as it has it, then the report with the category table. The pane
shows the summary when it appears and the full report when the job ends, reading only
cache entries: the TUI process never loads the store's embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mgap.engine.reports.analysis import GapReport
from mgap.engine.studies.gap_request import GapRequest
from mgap.store import Store, open_store
from mgap.tui.analysis_jobs import GAP, WorkProgress, job_error, job_output, wait_for_job


def gap_request(by_category: bool) -> GapRequest:
    """The TUI's gap options: `mgap gap`'s defaults without the separability."""
    return GapRequest(by_category=by_category, separability=False)


def gap_command(store: Path, by_category: bool) -> list[str]:
    """The job's command: the TUI's request, on the default device."""
    import sys

    args = gap_request(by_category).cli_args()
    return [sys.executable, "-m", "mgap", GAP, str(store), *args, "--json"]


def cached_report(store: Store, by_category: bool) -> GapReport | None:
    """The cached report the job writes for these options, or None."""
    from mgap.engine.compute.backend import resolve_backend
    from mgap.engine.studies import gap_cache

    compute = resolve_backend("auto").describe()
    doc = gap_cache.load_gap(store, gap_cache.gap_params(store, gap_request(by_category), compute))
    return None if doc is None else GapReport.from_json(doc)


def gap_via_job(
    path: Path,
    cancelled: Callable[[], bool],
    on_summary: Callable[[GapReport], None],
    on_poll: Callable[[WorkProgress], None],
) -> GapReport | None:
    """The gap report (with the category table when the store has categories) of `path`.

    Answers from the cache when it can; else waits for the store's gap job (starting one),
    calling `on_summary` once with the summary as soon as the job has cached it and
    `on_poll` with its progress. None when the wait was cancelled."""
    store = open_store(path)
    by_category = bool(store.category_names)
    summary_shown = False

    def poll(progress: WorkProgress) -> None:
        nonlocal summary_shown
        if by_category and not summary_shown:
            summary = cached_report(store, by_category=False)
            if summary is not None:
                summary_shown = True
                on_summary(summary)
        on_poll(progress)

    status = wait_for_job(
        store.path,
        GAP,
        lambda: gap_command(store.path.absolute(), by_category),
        cancelled,
        lambda: cached_report(store, by_category) is not None,
        poll,
    )
    if status is None:
        return None
    report = cached_report(store, by_category)
    if report is None and status == "complete":  # a sidecar it could not write
        output = job_output(store.path, GAP)
        report = None if output is None else GapReport.from_json(output)
    if report is None:
        raise job_error(store.path, GAP, status)
    return report
