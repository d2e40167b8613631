"""The progress file a job keeps for the TUI (MGAP_WORK_FILE, issue 11 item 2)."""

from __future__ import annotations

import json

import numpy as np

from mgap.engine.compute.backend import resolve_backend
from mgap.engine.measures.pairwise_table import pairwise_table
from mgap.engine.studies import work as studies_work


def test_work_keeps_label_fraction_and_eta_in_the_file(tmp_path, monkeypatch):
    path = tmp_path / "job.work.json"
    monkeypatch.setenv(studies_work.WORK_FILE_ENV, str(path))
    monkeypatch.setattr(studies_work, "WRITE_S", 0.0)
    with studies_work.Work("sampled retrieval", 10, 0.0, resolve_backend("cpu")) as work:
        assert json.loads(path.read_text())["done"] == 0
        work.advance(4)
        doc = json.loads(path.read_text())
        assert (doc["label"], doc["done"], doc["total"], doc["device"]) == (
            "sampled retrieval",
            4,
            10,
            "cpu",
        )
        # the ETA extrapolates the elapsed time over the units left: 6 more at 4 per elapsed
        assert doc["eta_s"] == doc["elapsed_s"] / 4 * 6
    assert json.loads(path.read_text())["done"] == 10
    studies_work.phase("gap metrics")
    assert json.loads(path.read_text())["label"] == "gap metrics"


def test_no_file_outside_a_job(tmp_path, monkeypatch):
    monkeypatch.delenv(studies_work.WORK_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with studies_work.Work("x", 3, 0.0, resolve_backend("cpu")) as work:
        work.advance(3)
    studies_work.phase("y")
    assert list(tmp_path.iterdir()) == []


def test_the_sampled_table_advances_by_exactly_the_image_rows():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(300, 8)), rng.normal(size=(900, 8))
    img_slot, txt_slot = np.arange(300) % 3, np.arange(900) % 3
    steps: list[int] = []
    _, info = pairwise_table(
        X,
        Y,
        img_slot,
        txt_slot,
        3,
        backend=resolve_backend("cpu"),
        sample=60,
        rows=7,
        progress=steps.append,
    )
    assert info["mode"] == "sampled"
    assert len(steps) > 1 and sum(steps) == 300
