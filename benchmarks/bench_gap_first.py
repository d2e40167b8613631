"""How long the TUI waits for a large store's first gap numbers: job process vs in-process.

    python benchmarks/bench_gap_first.py STORE [--repeats 3]

mgap (now): the TUI starts `mgap gap STORE --by-category --no-separability --json` and
shows L2M once the job has cached its summary; timed from the job's start until that
cache entry is readable (the job is then stopped). Baseline (before): the TUI's own
thread computed the same summary in-process (`gap_report(..., by_category=False)`), which
held the whole store in the TUI process. The sidecar cache (`STORE.cache.h5`) is removed
before every run, so point STORE at a copy or a hard link whose sidecar you may delete.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from _harness import measure, report

from mgap.engine.studies.gap import gap_report
from mgap.store import open_store
from mgap.store.naming import cache_path
from mgap.tui.gap_job import cached_report, gap_command


def job_until_summary(path: Path) -> float:
    cache_path(path).unlink(missing_ok=True)
    store = open_store(path)
    start = time.perf_counter()
    job = subprocess.Popen(gap_command(path, True), stdout=subprocess.DEVNULL)
    try:
        while cached_report(store, by_category=False) is None:
            if job.poll() is not None:
                raise SystemExit(f"the gap job exited with {job.returncode} before its summary")
            time.sleep(0.1)
        return time.perf_counter() - start
    finally:
        job.send_signal(signal.SIGTERM)
        job.wait()


def in_process(path: Path) -> dict:
    cache_path(path).unlink(missing_ok=True)
    return gap_report(open_store(path), by_category=False, separability=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = args.store.absolute()
    ours = measure(lambda: job_until_summary(path), repeats=args.repeats)
    baseline = measure(lambda: in_process(path), repeats=args.repeats)
    report("first gap numbers (L2M) of a large store", ours, baseline, "in-process (before)")
    print(f"mgap: the TUI process holds none of the store; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
