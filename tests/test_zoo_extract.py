"""`mgap extract --models FILE`, spec patterns and checkpoint globs (issue 24, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
import torch
from conftest import run_cli
from tiny_clip_models import make_tiny_clip, make_tiny_siglip

from mgap.engine.models import load_model
from mgap.engine.models.checkpoints import checkpoint_step
from mgap.engine.specs import read_model_list

EPOCHS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """toy:zt trained for 3 epochs with a learned temperature and a checkpoint per epoch."""
    root = tmp_path_factory.mktemp("zoo")
    env = {"MGAP_CACHE_DIR": str(root / "cache")}
    checkpoints = root / "checkpoints"
    done = run_cli(
        "train-toy",
        "--name",
        "zt",
        "--epochs",
        str(EPOCHS),
        "--n-train",
        "128",
        "--learned-temperature",
        "--checkpoints",
        str(checkpoints),
        "--json",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return root, env, checkpoints


def _extract(env, store_dir: Path, *args: str):
    return run_cli(
        "extract",
        *args,
        "--dataset",
        "synthetic",
        "--limit",
        "12",
        "--store-dir",
        str(store_dir),
        "--batch-size",
        "8",
        "--workers",
        "0",
        env=env,
    )


def _one_error_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_checkpoint_glob_makes_one_store_per_checkpoint_with_step_and_scale(run, tmp_path):
    root, env, checkpoints = run
    files = sorted(checkpoints.glob("epoch_*.pt"))
    assert [f.name for f in files] == [f"epoch_{k}.pt" for k in range(1, EPOCHS + 1)]
    done = _extract(env, tmp_path / "stores", "--model", f"toy:zt@{checkpoints}/epoch_*.pt")
    assert done.returncode == 0, done.stderr
    assert f"{EPOCHS} model(s) resolved" in done.stderr
    stores = sorted((tmp_path / "stores").glob("*.h5"))
    assert len(stores) == EPOCHS
    rows = []
    for store in stores:
        with h5py.File(store, "r") as f:
            attrs = dict(f.attrs)
        rows.append(
            (int(attrs["checkpoint_step"]), attrs["checkpoint"], float(attrs["logit_scale"]))
        )
    rows.sort()
    assert [r[0] for r in rows] == list(range(1, EPOCHS + 1))
    for (step, path, scale), file in zip(rows, files, strict=True):
        assert path == str(file.resolve())
        saved = torch.load(file, map_location="cpu", weights_only=True)
        assert saved["epoch"] == step
        assert scale == pytest.approx(float(saved["state_dict"]["logit_scale"].exp()), rel=1e-6)
    # the temperature is learned, so each checkpoint carries its own scale
    assert len({round(r[2], 6) for r in rows}) == EPOCHS


def test_models_file_with_comments_and_dry_run(run, tmp_path):
    root, env, checkpoints = run
    listing = tmp_path / "models.txt"
    listing.write_text(
        "# the toy run, every checkpoint\n"
        "\n"
        f"toy:zt@{checkpoints}/epoch_*.pt   # three files\n"
        "   toy:zt\n"
        "toy:zt@random  # its starting point\n",
        encoding="utf-8",
    )
    assert read_model_list(listing) == [
        f"toy:zt@{checkpoints}/epoch_*.pt",
        "toy:zt",
        "toy:zt@random",
    ]
    stores = tmp_path / "stores"
    done = _extract(env, stores, "--models", str(listing), "--dry-run")
    assert done.returncode == 0, done.stderr
    expected = [f"toy:zt@{(checkpoints / f'epoch_{k}.pt').resolve()}" for k in (1, 2, 3)]
    expected += ["toy:zt", "toy:zt@random"]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "mgap extract: 5 model(s) resolved"
    assert [line.strip() for line in lines[1:]] == expected
    assert not stores.exists()
    as_json = _extract(env, stores, "--models", str(listing), "--dry-run", "--json")
    assert json.loads(as_json.stdout) == {"models": expected, "count": 5}
    assert not stores.exists()


def test_open_clip_pattern_resolves_against_the_catalog(run, tmp_path):
    open_clip = pytest.importorskip("open_clip")
    _, env, _ = run
    done = _extract(env, tmp_path / "s", "--model", "open_clip:ViT-B-32@*", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    tags = sorted(t for a, t in open_clip.list_pretrained() if a == "ViT-B-32")
    doc = json.loads(done.stdout)
    assert doc["count"] == len(tags) > 1
    assert sorted(doc["models"]) == sorted(f"open_clip:ViT-B-32@{t}" for t in tags)


def test_pattern_matching_nothing_is_refused_in_one_line(run, tmp_path):
    _, env, _ = run
    done = _extract(env, tmp_path / "s", "--model", "toy:zt", "--model", "toy:nothing-*")
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "'toy:nothing-*'" in line and "mgap models" in line
    assert not (tmp_path / "s").exists()


def test_missing_checkpoints_refused_before_any_store(run, tmp_path):
    _, env, checkpoints = run
    missing = [checkpoints / "epoch_9.pt", tmp_path / "elsewhere" / "epoch_2.pt"]
    args = ["--model", f"toy:zt@{checkpoints}/epoch_1.pt"]
    for path in missing:
        args += ["--model", f"toy:zt@{path}"]
    done = _extract(env, tmp_path / "stores", *args)
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "2 of 3 models" in line
    assert all(str(path) in line for path in missing)
    assert not any((tmp_path / "stores").glob("*.h5"))


def test_a_glob_matching_no_file_is_refused(run, tmp_path):
    _, env, checkpoints = run
    done = _extract(env, tmp_path / "s", "--model", f"toy:zt@{checkpoints}/step_*.pt")
    assert done.returncode == 2
    assert "matches no file" in _one_error_line(done)


def test_step_falls_back_to_the_file_name(tmp_path):
    plain = tmp_path / "run3_step_1200.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, plain)
    assert checkpoint_step(plain) == 1200
    saved = tmp_path / "latest.pt"
    torch.save({"step": 77, "epoch": 4, "state_dict": {}}, saved)
    assert checkpoint_step(saved) == 77


def test_hf_clip_and_siglip_record_their_logit_scale(tmp_path, minilm_dir):
    from safetensors.torch import load_file, save_file

    clip = make_tiny_clip(tmp_path / "clip", seed=1)
    siglip = make_tiny_siglip(tmp_path / "siglip", minilm_dir, seed=2)
    for folder, scale, bias in ((clip, 2.5, None), (siglip, 1.75, -3.0)):
        weights = load_file(folder / "model.safetensors")
        weights["logit_scale"] = torch.tensor([scale]).reshape(weights["logit_scale"].shape)
        if bias is not None:
            weights["logit_bias"] = torch.tensor([bias]).reshape(weights["logit_bias"].shape)
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    described = load_model(f"hf:{clip}").describe()
    assert described["logit_scale"] == pytest.approx(float(torch.tensor(2.5).exp()), rel=1e-6)
    assert "logit_bias" not in described
    described = load_model(f"hf:{siglip}").describe()
    assert described["logit_scale"] == pytest.approx(float(torch.tensor(1.75).exp()), rel=1e-6)
    assert described["logit_bias"] == pytest.approx(-3.0)
    assert "checkpoint" not in described
