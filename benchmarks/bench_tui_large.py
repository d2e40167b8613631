"""Drive the real `mgap tui` in tmux (100x30) on a large store: Enter -> L2M, memory, jobs.

    python benchmarks/bench_tui_large.py STORE_DIR STORE_NAME [--limit S] [--cold]
        [--examples-row N] [--examples-cli CATEGORY [--cli-only]]

Selects STORE_NAME in the Stores pane, presses Enter and polls the screen: the time until
L2M is visible, the TUI process's peak RSS (VmHWM), and for each analysis job the TUI
starts (gap, retrieval) its wall time and peak RSS, until both jobs ended or --limit
seconds passed. `--cold` first removes the store's sidecar cache and job files (only
there: the store itself is never written). Needs tmux; Linux /proc for the RSS figures.

`--examples-row N` then moves to category row N of Results and presses Enter: the time
until the examples list is drawn (and whether its ranks came from a cache), until the
first image's retrieved captions are shown, and from a Down press until the next image's
are; then Escape and the same again, which reads what the first drill-down cached. `--examples-cli CATEGORY` times
`mgap examples --category CATEGORY --worst 20` against `mgap gap` with its sidecar cache
set aside (wall time, peak RSS);
`--cli-only` skips the TUI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

SOCKET = f"mgap-bench-{os.getpid()}"
KINDS = ("gap", "retrieval")


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], capture_output=True, text=True, check=False
    ).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", "bench")


def wait_for(text: str, limit: float) -> float:
    """Seconds until the screen matches the regular expression `text`."""
    start = time.monotonic()
    while not re.search(text, screen()):
        if time.monotonic() - start > limit:
            raise SystemExit(f"'{text}' did not appear within {limit} s\n{screen()}")
        time.sleep(0.05)
    return time.monotonic() - start


def peak_rss_gib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def tui_pid() -> int:
    pane = int(tmux("list-panes", "-t", "bench", "-F", "#{pane_pid}").split()[0])
    for pid in [pane, *_children(pane)]:
        if b"tui" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            return pid
    raise SystemExit("no mgap tui process found")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def job_pid(store: Path, kind: str) -> int | None:
    try:
        doc = json.loads(Path(f"{store}.{kind}.progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc.get("pid")


def watch_jobs(store: Path, start: float, limit: float, jobs: dict[str, dict]) -> None:
    """Each analysis job's start, end (seen from here) and peak RSS, until both ended."""
    while time.monotonic() - start < limit:
        for kind in KINDS:
            jp = job_pid(store, kind)
            if jp is None or jobs.get(kind, {}).get("end"):
                continue
            info = jobs.setdefault(kind, {"pid": jp, "seen": time.monotonic() - start})
            rss = peak_rss_gib(jp)
            if rss is None:
                info["end"] = time.monotonic() - start
            else:
                info["rss"] = rss
        if all(jobs.get(kind, {}).get("end") for kind in KINDS):
            return
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store_dir", type=Path)
    parser.add_argument("store_name")
    parser.add_argument("--limit", type=float, default=600.0)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--examples-row", type=int, default=None)
    parser.add_argument("--examples-cli", default=None)
    parser.add_argument("--cli-only", action="store_true")
    args = parser.parse_args()
    store = args.store_dir.absolute() / args.store_name
    if args.examples_cli is not None:
        examples_vs_gap(store, args.examples_cli)
    if args.cli_only:
        return
    if args.cold:
        for suffix in (".cache.h5", *(f".{k}.{s}" for k in KINDS for s in FILES)):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
    command = f"{sys.executable} -m mgap tui --store-dir '{args.store_dir}'"
    tmux("new-session", "-d", "-s", "bench", "-x", "100", "-y", "30", command)
    try:
        run(store, args.limit)
        if args.examples_row is not None:
            drill_down(args.examples_row, args.limit, "first drill-down", True)
            drill_down(args.examples_row, args.limit, "second drill-down (cached)", False)
    finally:
        tmux("kill-server")


FILES = ("progress.json", "log", "json", "work.json")


def run(store: Path, limit: float) -> None:
    wait_for("1 Models", 60)
    pid = tui_pid()
    tmux("send-keys", "-t", "bench", "4")
    wait_for(re.escape(store.name), 120)
    tmux("send-keys", "-t", "bench", "Home", "Space")
    time.sleep(1.0)
    start = time.monotonic()
    tmux("send-keys", "-t", "bench", "Enter")
    jobs: dict[str, dict] = {}
    watcher = threading.Thread(target=watch_jobs, args=(store, start, limit, jobs), daemon=True)
    watcher.start()
    l2m = wait_for(r"L2M \d\.\d{4}", limit)  # the number, not the table's column header
    print(f"Enter -> L2M visible: {l2m:.1f} s (TUI peak RSS so far {peak_rss_gib(pid):.2f} GiB)")
    time.sleep(5)
    tmux("send-keys", "-t", "bench", "3")  # the Jobs pane, once
    time.sleep(1.5)
    jobs_screen = screen()
    tmux("send-keys", "-t", "bench", "5")
    watcher.join()
    time.sleep(1.5)  # the TUI reads the cached results back
    print(f"TUI peak RSS: {peak_rss_gib(pid):.2f} GiB")
    for kind, info in jobs.items():
        took = info.get("end", float("nan")) - info["seen"]
        print(
            f"{kind} job pid {info['pid']}: started at {info['seen']:.1f} s, "
            f"ended at {info.get('end', float('nan')):.1f} s ({took:.1f} s), "
            f"peak RSS {info.get('rss', float('nan')):.2f} GiB"
        )
    print("---- Jobs pane, 5 s after L2M ----")
    print(jobs_screen)
    print("---- Results at the end ----")
    print(screen())


MARKED = r"[✓✗] \d"  # a retrieved caption drawn with its mark (not "retrieved: computing…")
HEADER = r"(\S+)  \[[^\]]*\]  rank"  # the selected example's first line
#: a row below (all) in Results (scrolled out of view once a lower row is highlighted)
CATEGORY_ROW = r"\(all\)[^\n]*\n +[^\s│][^\n]*\d\.\d{3}"


def press_enter() -> float:
    """Enter on the highlighted category row; when the examples screen does not open
    within 5 s (a key lost while Results redraws after Escape), Enter once more. Returns
    the time of the Enter that opened it."""
    for _ in range(2):
        entered = time.monotonic()
        tmux("send-keys", "-t", "bench", "Enter")
        while time.monotonic() - entered < 5:
            if "worst by" in screen():
                return entered
            time.sleep(0.02)
        print("(Enter did not open the examples; pressed again)")
    raise SystemExit(f"Enter did not open the examples\n{screen()}")


def drill_down(row: int, limit: float, label: str, first_time: bool) -> None:
    """Enter on category row `row` of Results: seconds until the list, until the first
    image's top-5, and from a Down press until the next image's top-5 is drawn."""
    if first_time:  # Escape comes back to the same row: the second time, only Enter
        wait_for(CATEGORY_ROW, limit)  # the category rows, not only (all)
        tmux("send-keys", "-t", "bench", "Home", *["Down"] * row)
    time.sleep(1.0)
    entered = press_enter()
    wait_for(r"of \d+ images · ranks (cached|computed)", limit)
    listed = time.monotonic() - entered
    ranks = re.search(r"ranks (cached|computed)", screen()).group(1)
    wait_for(MARKED, limit - listed)
    detail = time.monotonic() - entered - listed
    first = re.search(HEADER, screen()).group(1)
    tmux("send-keys", "-t", "bench", "Down")
    start, resent = time.monotonic(), False
    while True:
        shown = re.search(HEADER, screen())
        if shown and shown.group(1) != first and re.search(MARKED, screen()):
            break
        if not resent and time.monotonic() - start > 5 and shown and shown.group(1) == first:
            print("(Down did not move the list; pressed again)")
            tmux("send-keys", "-t", "bench", "Down")
            start, resent = time.monotonic(), True
        if time.monotonic() - start > limit:
            raise SystemExit(f"Down did not show the next image within {limit} s\n{screen()}")
        time.sleep(0.02)
    arrow = time.monotonic() - start
    print(
        f"{label}: Enter on category row {row} -> examples list: {listed:.2f} s "
        f"(ranks {ranks}); first image's top-5: {detail + listed:.2f} s; "
        f"Down -> next image's top-5: {arrow:.2f} s"
    )
    print(screen())
    tmux("send-keys", "-t", "bench", "Escape")
    time.sleep(1.0)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of one child process."""
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {child.stderr.read().decode()}")
    return time.monotonic() - start, usage.ru_maxrss / 2**20


def examples_vs_gap(store: Path, category: str) -> None:
    mgap = [sys.executable, "-m", "mgap"]
    ex_s, ex_rss = timed(
        [*mgap, "examples", str(store), "--category", category, "--worst", "20", "--json"]
    )
    cache = Path(f"{store}.cache.h5")  # set aside: a cached gap report reads no rows
    aside = cache.with_name(cache.name + ".bench-aside")
    if cache.exists():
        cache.rename(aside)
    try:
        gap_s, gap_rss = timed([*mgap, "gap", str(store), "--json"])
    finally:
        if aside.exists():
            aside.replace(cache)
    print(
        f"mgap examples --category {category} --worst 20: {ex_s:.1f} s, peak RSS {ex_rss:.2f} GiB"
    )
    print(f"mgap gap: {gap_s:.1f} s, peak RSS {gap_rss:.2f} GiB")
    print(f"ratios examples/gap: time {ex_s / gap_s:.2f}, peak RSS {ex_rss / gap_rss:.2f}")


if __name__ == "__main__":
    main()
