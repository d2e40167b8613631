"""`mgap extract` end to end on the real COCO sample: stores, skips, kill/resume, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mgap.store import open_store
from mgap.store.naming import progress_path

MODEL = "open_clip:ViT-S-32@random"  # a real open_clip architecture, random init, fast on CPU


def _coco_counts(root: Path, split: str = "train2017") -> tuple[int, int]:
    data = json.loads((root / "annotations" / f"captions_{split}.json").read_text())
    return len(data["images"]), len(data["annotations"])


def test_extract_coco_writes_complete_store(tiny_coco, tmp_path, cli, extract_cli):
    doc = extract_cli.json(MODEL, args=["--store-dir", str(tmp_path)])
    n_images, n_captions = _coco_counts(tiny_coco)
    (summary,) = doc["stores"]
    assert summary["status"] == "complete" and summary["n_images"] == n_images == 50
    store = open_store(summary["store"])
    assert Path(summary["store"]).name == "coco-train2017__open_clip-ViT-S-32-random.h5"
    assert store.n_texts == n_captions
    assert store.category_names and (store.primary_category >= 0).any()
    assert store.attrs["embedding_image"] and store.attrs["device"] == "cpu"
    x = store.image_embeddings()
    assert x.shape == (50, store.image_dim) and np.isfinite(x).all()
    names, prompts = store.prompt_embeddings("category")
    assert prompts.shape == (len(store.category_names), store.text_dim)
    assert cli("verify", summary["store"]).returncode == 0
    # a second run without --overwrite leaves the complete store untouched
    before = Path(summary["store"]).read_bytes()
    again = extract_cli.json(MODEL, args=["--store-dir", str(tmp_path)])
    assert again["stores"][0]["note"] == "already complete"
    assert Path(summary["store"]).read_bytes() == before


def test_broken_and_missing_images_are_skipped(tiny_coco, tmp_path, cli, extract_cli):
    root = tmp_path / "coco"
    shutil.copytree(tiny_coco, root)
    images = sorted((root / "train2017").glob("*.jpg"))
    data = images[0].read_bytes()
    images[0].write_bytes(data[: len(data) // 3])  # truncated JPEG
    images[1].unlink()  # missing file
    doc = extract_cli.json(MODEL, root=root, limit=12, args=["--out", str(tmp_path / "s.h5")])
    (summary,) = doc["stores"]
    assert summary["status"] == "complete" and summary["skipped"] >= 1
    info = json.loads(cli("info", str(tmp_path / "s.h5"), "--json").stdout)
    store = open_store(tmp_path / "s.h5")
    assert info["skipped"] == len(store.skipped) == summary["skipped"]
    assert info["n_images"] == 12 - info["skipped"]
    missing_id = str(int(images[1].stem))
    assert (
        "FileNotFoundError" in store.skipped[missing_id]
        or "No such file" in store.skipped[missing_id]
    )
    assert cli("verify", str(tmp_path / "s.h5")).returncode == 0


def test_sigkill_then_resume_equals_uninterrupted_run(tiny_coco, tmp_path, extract_cli):
    common = [
        "--block-rows",
        "8",
        "--batch-size",
        "4",
        "--workers",
        "1",
    ]
    extract_cli.json(MODEL, limit=24, args=[*common, "--out", str(tmp_path / "ref.h5")])
    target = tmp_path / "killed.h5"
    command = extract_cli.command(MODEL, limit=24)
    cmd = [sys.executable, "-m", "mgap", *command, "--quiet", *common, "--out", str(target)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        doc = (
            json.loads(progress_path(target).read_text()) if progress_path(target).exists() else {}
        )
        if doc.get("phase") == "images" and doc.get("images_done", 0) >= 8:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = open_store(target)
    assert partial.status == "partial" and 8 <= partial.n_images < 24
    doc = extract_cli.json(MODEL, limit=24, args=[*common, "--out", str(target)])
    assert doc["stores"][0]["status"] == "complete"
    ref, resumed = open_store(tmp_path / "ref.h5"), open_store(target)
    np.testing.assert_array_equal(
        resumed.image_embeddings(np.float16), ref.image_embeddings(np.float16)
    )
    np.testing.assert_array_equal(
        resumed.text_embeddings(np.float16), ref.text_embeddings(np.float16)
    )
    np.testing.assert_array_equal(resumed.image_ids, ref.image_ids)


def test_sentence_encoder_writes_text_only_store(tiny_coco, minilm_dir, tmp_path, cli, extract_cli):
    extract_cli.json(f"st:{minilm_dir}", args=["--out", str(tmp_path / "t.h5")])
    store = open_store(tmp_path / "t.h5")
    assert store.has_texts and not store.has_images
    assert store.n_images == 50 and store.n_texts == _coco_counts(tiny_coco)[1]
    assert store.text_dim == 384
    assert cli("verify", str(tmp_path / "t.h5")).returncode == 0


@pytest.mark.parametrize(
    "args,code",
    [
        (["--model", "nosuch:thing", "--dataset", "coco"], 2),
        (["--model", "open_clip:NoSuchArch@random", "--dataset", "synthetic"], 2),
        (["--model", MODEL, "--dataset", "coco", "--data-root", "/nonexistent/coco"], 1),
        (["--model", MODEL, "--dataset", "coco", "--limit", "0"], 2),
        (["--model", MODEL, "--dataset", "nosuch"], 2),
    ],
)
def test_bad_input_is_one_line(args, code, cli, tmp_path):
    r = cli("extract", *args, "--store-dir", str(tmp_path))
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_missing_annotations_and_malformed_json(tmp_path, extract_cli):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    r = extract_cli.run(MODEL, root=root, split="val2017", args=["--store-dir", str(tmp_path)])
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr
    assert "captions_val2017.json" in r.stderr
    (root / "annotations" / "captions_val2017.json").write_text('{"images": [')
    r = extract_cli.run(MODEL, root=root, split="val2017", args=["--store-dir", str(tmp_path)])
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_store_path_that_is_not_hdf5(tmp_path, extract_cli):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    r = extract_cli.run(MODEL, args=["--out", str(bad)])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert bad.read_text() == "not hdf5"
