"""MGAP_REQUIRE_SHARED=1 (set by .ci/run) turns a missing ../shared from a skip into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(("require", "outcome"), [("1", "1 error"), ("", "1 skipped")])
def test_missing_shared_data_fails_only_when_required(tmp_path, require, outcome):
    (tmp_path / "test_needs_coco.py").write_text("def test_coco(tiny_coco):\n    pass\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "MGAP_SHARED_DIR": str(tmp_path / "no-shared-here"),
        "MGAP_REQUIRE_SHARED": require,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in done.stdout, done.stdout + done.stderr  # a fixture failure is an error
    if require:
        assert "MGAP_REQUIRE_SHARED=1 makes this a failure" in done.stdout
