"""`mgap extract --nproc N`: start PyTorch's own torchrun on this node, nothing of our own.

torchrun starts N copies of the same `mgap extract` command (without `--nproc`); each
finds its rank in the environment. Their `mgap ...` lines pass through; torchrun's own
chatter and tracebacks go to a log file, and a failure becomes one line: the rank that
died and how, or the ranks' own error lines.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mgap.core.errors import MgapError

#: the ranks' own progress and summary lines; everything else is torchrun's and goes to the log
_OURS = re.compile(r"^(mgap extract|(complete|partial|cancelled|failed): )")
_RETRY = "rerun the same command: blocks already written are kept"


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
    with (
        tempfile.NamedTemporaryFile(
            "w", prefix="mgap-torchrun-", suffix=".log", delete=False, encoding="utf-8"
        ) as log_file,
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1) as proc,
    ):
        for line in proc.stderr:
            if line.startswith("mgap: error: "):
                message = line.removeprefix("mgap: error: ").strip()
                if message not in errors:
                    errors.append(message)
            elif _OURS.match(line):
                sys.stderr.write(line)
            log_file.write(line)
        code = proc.wait()
    log_path = Path(log_file.name)
    if code == 0:
        log_path.unlink(missing_ok=True)
        return 0
    log = log_path.read_text(encoding="utf-8")
    print(f"mgap: error: {failure_line(log, errors, nproc, log_path)}", file=sys.stderr)
    cause = root_cause(log)
    return 2 if cause and cause[1] == 2 else 1
