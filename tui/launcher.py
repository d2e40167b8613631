"""The one way the TUI starts a job: an `mgap` process detached from the TUI.

Used for extraction (`tui/jobs.py`) and analysis jobs (`tui/analysis_jobs.py`). The job
runs in a new session with no stdin, so closing the TUI or dropping the SSH connection
never stops it, and its environment carries a fresh token (`JOB_TOKEN_ENV`) that only
the job holds: its progress file records the token's digest, and the TUI signals a pid
only when that process's environment holds the matching token (`store/process.py`).
"""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from mgap.store.naming import open_sidecar
from mgap.store.process import JOB_TOKEN_ENV, new_job_token, token_digest


@dataclass(frozen=True)
class Detached:
    """A started job: its process and the digest of the token in its environment."""

    process: subprocess.Popen
    token_sha256: str

    @property
    def pid(self) -> int:
        return self.process.pid


def launch_detached(
    command: list[str], log: Path, stdout: Path | None = None, env: dict[str, str] | None = None
) -> Detached:
    """Start `command` in its own session: stderr (and stdout unless `stdout` is given) is
    appended to `log` after a `$ command` line; `env` adds to the TUI's environment.
    Both files sit beside a store and are opened without following links (`open_sidecar`)."""
    token = new_job_token()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {}), JOB_TOKEN_ENV: token}
    with ExitStack() as files:
        append, replace = os.O_WRONLY | os.O_CREAT | os.O_APPEND, os.O_WRONLY | os.O_CREAT
        err = files.enter_context(os.fdopen(open_sidecar(log, append), "ab"))
        out = err
        if stdout is not None:
            out = files.enter_context(os.fdopen(open_sidecar(stdout, replace | os.O_TRUNC), "wb"))
        err.write(f"$ {' '.join(command)}\n".encode())
        err.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
            env=environment,
        )
    return Detached(process, token_digest(token))
