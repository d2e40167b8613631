"""Who wrote a progress file: the command line and start time of the extracting process.

A progress file names a pid, and pids are reused. Before the TUI signals that pid it
checks that the process now holding it has the same command line and kernel start time
(Linux /proc) as the one that wrote the file, and that it is an `mgap extract` of that
store, or an analysis job of it (`JOB_COMMANDS`). Where /proc is absent nothing can be
confirmed, and nothing is signalled.
"""

from __future__ import annotations

import os
from pathlib import Path


def _proc(pid: int | str, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def command_line(pid: int | str = "self") -> list[str] | None:
    raw = _proc(pid, "cmdline")
    if not raw:
        return None
    return [part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0")]


def start_ticks(pid: int | str = "self") -> int | None:
    """The process start time in clock ticks after boot (field 22 of /proc/PID/stat)."""
    raw = _proc(pid, "stat")
    if not raw:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_identity() -> dict[str, object]:
    """What the progress file records about this process (empty values off Linux)."""
    return {"cmdline": command_line() or [], "proc_start": start_ticks()}


#: the mgap subcommands that run as TUI jobs: extraction, and analyses of large stores
JOB_COMMANDS = frozenset({"extract", "retrieval", "gap"})


def is_extract_of(pid: int, doc: dict[str, object], store: str | os.PathLike) -> bool:
    """True when `pid` is still the `mgap extract` (or analysis job, `JOB_COMMANDS`) that
    wrote `doc` for `store`."""
    recorded, started = doc.get("cmdline"), doc.get("proc_start")
    if not isinstance(recorded, list) or not recorded or not isinstance(started, int):
        return False
    if Path(str(doc.get("store"))).name != Path(store).name or doc.get("pid") != pid:
        return False
    if not JOB_COMMANDS.intersection(recorded):
        return False
    return command_line(pid) == recorded and start_ticks(pid) == started
