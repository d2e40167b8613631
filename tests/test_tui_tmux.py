"""Runs tests/tmux_drive.sh: the real `mgap tui` in an 80×24 tmux window, driven by keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("tmux_drive.sh")


def _drive(extract: bool, timeout: float) -> subprocess.CompletedProcess:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    env = {**os.environ, "PYTHON": sys.executable, "MGAP_TMUX_EXTRACT": "1" if extract else "0"}
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_a_person_browses_a_store_over_tmux():
    done = _drive(extract=False, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tmux_drive: all steps passed" in done.stdout


@pytest.mark.slow
def test_a_person_extracts_then_browses_over_tmux():
    """The issue's "done when": extract from the TUI, watch the job, browse the results."""
    done = _drive(extract=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: complete" in done.stdout
