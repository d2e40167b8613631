"""`mgap extract --perturb` on the real COCO sample: perturbed sides beside the clean one."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from mgap.store import open_store
from mgap.store import schema as S

MODEL = "open_clip:ViT-S-32@random"


def _extract(cli, root, out, *args: str):
    return cli(
        "extract",
        "--model",
        MODEL,
        "--dataset",
        "coco",
        "--split",
        "train2017",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--limit",
        "3",
        "--dtype",
        "float32",
        "--workers",
        "0",
        "--json",
        "--quiet",
        *args,
    )


@pytest.mark.slow
def test_perturbed_sides_are_stored_beside_the_clean_one(tiny_coco, tmp_path, cli):
    out = tmp_path / "p.h5"
    args = ("--perturb", "blur:1", "--perturb", "occlude:0", "--perturb", "noise:.1")
    r = _extract(cli, tiny_coco, out, *args, "--perturb-seed", "3")
    assert r.returncode == 0, r.stderr
    store = open_store(out)
    assert store.perturbations == ["blur:1", "occlude:0", "noise:0.1"]
    assert int(store.attrs["perturb_seed"]) == 3
    clean = store.image_embeddings()
    # identities end to end: the same pixels give the same embeddings
    assert np.array_equal(store.perturbed_image_embeddings("blur:1"), clean)
    assert np.array_equal(store.perturbed_image_embeddings("occlude:0"), clean)
    noisy = store.perturbed_image_embeddings("noise:0.1")
    assert noisy.shape == clean.shape and not np.allclose(noisy, clean)
    with h5py.File(out, "r") as f:  # text embedded once: no perturbed text side anywhere
        assert set(f[S.IMAGE_PERTURBED]) == {"blur:1", "occlude:0", "noise:0.1"}
        assert f[S.TEXT_EMB].shape[0] == store.n_texts_total
    assert cli("verify", str(out)).returncode == 0
    info = cli("info", str(out))
    assert "blur:1, occlude:0, noise:0.1 (seed 3)" in info.stdout
    # the same seed reproduces the noisy side in a fresh run
    again = tmp_path / "q.h5"
    assert _extract(cli, tiny_coco, again, *args, "--perturb-seed", "3").returncode == 0
    assert np.array_equal(open_store(again).perturbed_image_embeddings("noise:0.1"), noisy)
    # resuming with other settings is refused in one line
    bad = _extract(cli, tiny_coco, out, "--perturb", "blur:3")
    assert bad.returncode == 1 and "perturbations" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_bad_perturbation_is_a_usage_error(tiny_coco, tmp_path, cli):
    r = _extract(cli, tiny_coco, tmp_path / "x.h5", "--perturb", "fog:2")
    assert r.returncode == 2 and "fog:2" in r.stderr and "Traceback" not in r.stderr
    r = _extract(cli, tiny_coco, tmp_path / "x.h5", "--perturb-suite", "study")
    assert r.returncode == 2 and "rtml" in r.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.slow
def test_suite_expands_to_eight_settings(tiny_coco, tmp_path, cli):
    out = tmp_path / "s.h5"
    r = _extract(cli, tiny_coco, out, "--perturb-suite", "rtml", "--limit", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["stores"][0]["n_images"] == 2
    assert open_store(out).perturbations == [
        "noise:0.01",
        "noise:0.05",
        "noise:0.1",
        "blur:1",
        "blur:3",
        "blur:5",
        "occlude:32",
        "occlude:64",
    ]
