"""Stand-ins for mgap jobs in the job tests: a script named `mgap`, as the console script is.

The TUI signals a pid only when it is a Python process running mgap whose command line
names the store and whose environment holds the token the progress file's digest names
(store/process.py); these stand-ins are run that way, with such a token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mgap.store.process import JOB_TOKEN_ENV, new_job_token


def fake_mgap(folder: Path, body: str = "import time; time.sleep(60)") -> Path:
    """Write `body` as `<folder>/fake/mgap`, run with `sys.executable <script> ...`."""
    script = Path(folder) / "fake" / "mgap"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(body)
    return script


def fake_command(folder: Path, *args: str, body: str = "import time; time.sleep(60)") -> list[str]:
    return [sys.executable, str(fake_mgap(folder, body)), *args]


def token_environment() -> dict[str, str]:
    """The test's environment plus a fresh job token, as the TUI's launcher starts a job."""
    return {**os.environ, JOB_TOKEN_ENV: new_job_token()}
