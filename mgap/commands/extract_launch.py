"""`mgap extract --nproc N`: start PyTorch's own torchrun on this node, nothing of our own.

torchrun starts N copies of the same `mgap extract` command (without `--nproc`); each
finds its rank in the environment. Their `mgap ...` lines pass through; torchrun's own
chatter and tracebacks go to a log, and a failure becomes one line: the rank that died
and how, or the ranks' own error lines.

The log is an unnamed temporary file while torchrun runs; it is copied to a named
`mgap-torchrun-*.log` in the temporary folder only when the error line must name it (a
rank that died of a signal, or said what went wrong, needs no log), so a killed or
failed run leaves no file nobody was told about. torchrun dies with this process and its ranks with torchrun
(`distributed.die_with_parent`), so `kill -9 -PGID` of this process's group ends them all.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import IO

from mgap.core.errors import MgapError
from mgap.engine.extract.distributed import LAUNCHER_PID_ENV, die_with_parent

#: the ranks' own progress and summary lines; everything else is torchrun's and goes to the log
_OURS = re.compile(r"^(mgap extract|(complete|partial|cancelled|failed): )")
_RETRY = "rerun the same command: blocks already written are kept"
#: stands for the log in a failure line until the line turns out to name it
_UNNAMED = Path("<torchrun log>")


def strip_nproc(argv: list[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def root_cause(log: str) -> tuple[int, int] | None:
    """(rank, exit code) of torchrun's 'Root Cause (first observed failure)' block."""
    block = log.split("Root Cause", 1)[-1] if "Root Cause" in log else ""
    rank = re.search(r"rank\s*:\s*(\d+)", block)
    code = re.search(r"exitcode\s*:\s*(-?\d+)", block)
    return (int(rank.group(1)), int(code.group(1))) if rank and code else None


def failure_line(log: str, errors: list[str], nproc: int, log_path: Path) -> str:
    """The one line a failed torchrun run ends with."""
    cause = root_cause(log)
    if cause and cause[1] < 0:
        rank, code = cause
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else ""
        return f"rank {rank} of {nproc} died ({name or f'signal {-code}'}); {_RETRY}"
    if errors:
        return errors[0]
    if cause:
        return f"rank {cause[0]} of {nproc} exited with code {cause[1]}; {_RETRY} (torchrun log: {log_path})"
    return f"torchrun failed; see {log_path}"


def launch(nproc: int, argv: list[str]) -> int:
    """Run torchrun with `nproc` ranks of `mgap ARGV` on this node; returns the exit code."""
    if nproc < 1:
        raise MgapError(f"--nproc must be at least 1, got {nproc}")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "mgap",
        *strip_nproc(argv),
    ]
    errors: list[str] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log_file:
        code = _run_torchrun(command, log_file, errors)
        if code == 0:
            return 0
        log_file.seek(0)
        log = log_file.read()
    line = failure_line(log, errors, nproc, _UNNAMED)
    if str(_UNNAMED) in line:
        line = failure_line(log, errors, nproc, _keep(log))
    print(f"mgap: error: {line}", file=sys.stderr)
    cause = root_cause(log)
    return 2 if cause and cause[1] == 2 else 1


def _run_torchrun(command: list[str], log_file: IO[str], errors: list[str]) -> int:
    """torchrun's exit code; its stderr lines into `log_file`, ours passed through."""
    env = {**os.environ, LAUNCHER_PID_ENV: str(os.getpid())}
    # torchrun gets SIGTERM (and stops its ranks) if this process dies first
    dies_with_us = partial(die_with_parent, signal.SIGTERM, os.getpid())
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, bufsize=1, env=env, preexec_fn=dies_with_us
    ) as proc:
        for line in proc.stderr:
            if line.startswith("mgap: error: "):
                message = line.removeprefix("mgap: error: ").strip()
                if message not in errors:
                    errors.append(message)
            elif _OURS.match(line):
                sys.stderr.write(line)
            log_file.write(line)
        return proc.wait()


def _keep(log: str) -> Path:
    """A failed run's log in a new `mgap-torchrun-*.log` (the error line names it)."""
    fd, name = tempfile.mkstemp(prefix="mgap-torchrun-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as kept:
        kept.write(log)
    return Path(name)
