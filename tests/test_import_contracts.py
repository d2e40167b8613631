"""The import-linter contracts of pyproject.toml hold, and a violation makes the check fail.

CI runs `lint-imports` in the checkout itself; this test runs it too so that `pytest` alone
catches a broken layer. tests/test_import_hygiene.py keeps the run-time check (what a
start-up really loads), which contracts cannot see.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(repo: Path) -> subprocess.CompletedProcess:
    """`lint-imports` in `repo`, as CI runs it: the checkout itself, no copy step."""
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=repo, capture_output=True, text=True, timeout=300
    )


def test_every_contract_is_kept():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _copy(tmp_path: Path) -> Path:
    for folder in ("mgap", "store", "engine", "tui"):
        shutil.copytree(
            REPO / folder,
            tmp_path / folder,
            symlinks=True,  # mgap/engine, mgap/store and mgap/tui stay links to the folders
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_textual_in_the_store_breaks_the_store_contract(tmp_path):
    repo = _copy(tmp_path)
    naming = repo / "store" / "naming.py"
    naming.write_text(naming.read_text() + "\nimport textual  # noqa\n")
    done = _lint(repo)
    assert done.returncode == 1
    assert (
        "store imports neither torch nor textual, nor the engine or the TUI BROKEN" in done.stdout
    )
    assert "mgap.store.naming -> textual" in done.stdout


def test_torch_outside_the_backend_breaks_the_analysis_contract(tmp_path):
    repo = _copy(tmp_path)
    gap = repo / "engine" / "studies" / "gap.py"
    gap.write_text(gap.read_text() + "\nimport torch  # noqa\n")
    done = _lint(repo)
    assert done.returncode == 1
    assert (
        "measures and studies import no torch except through the compute backend BROKEN"
        in done.stdout
    )


def test_a_store_import_in_a_measure_breaks_the_measures_contract(tmp_path):
    repo = _copy(tmp_path)
    sampling = repo / "engine" / "measures" / "sampling.py"
    sampling.write_text(sampling.read_text() + "\nimport mgap.store.reader  # noqa\n")
    done = _lint(repo)
    assert done.returncode == 1
    assert (
        "measures take arrays: they import no store, no study, no model and no report BROKEN"
        in done.stdout
    )
    assert "mgap.engine.measures.sampling -> mgap.store.reader" in done.stdout
