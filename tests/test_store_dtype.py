"""`mgap extract --store-dtype`: what the stored arrays are, and that readers and analyses
take float16 stores as they take float32 ones (the real COCO sample, end to end)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import TINY_COCO, _need, run_cli

from mgap.store import schema as S

MODEL = "open_clip:ViT-S-32@random"


def _extract(cli, root, out, *args: str):
    common = ["extract", "--model", MODEL, "--dataset", "coco", "--split", "train2017"]
    common += ["--data-root", str(root), "--out", str(out), "--limit", "6", "--workers", "0"]
    return cli(*common, "--json", "--quiet", *args)


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    """One float16 store (the default) for every test here: an extraction takes seconds."""
    out = tmp_path_factory.mktemp("dtype") / "half.h5"
    r = _extract(run_cli, _need(TINY_COCO), out, "--store-dtype", "float16")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stores"][0]["dtype"] == "float16"
    return out


def _raw(path, name):
    with h5py.File(path, "r") as f:
        return f[name][()]


def test_float16_store_holds_the_float32_embeddings_rounded(half, tiny_coco, tmp_path, cli):
    full = tmp_path / "full.h5"
    r = _extract(cli, tiny_coco, full, "--dtype", "float32")  # the option's old name
    assert r.returncode == 0, r.stderr
    for name in (S.IMAGE_EMB, S.TEXT_EMB):
        x16, x32 = _raw(half, name), _raw(full, name)
        assert x16.dtype == np.float16 and x32.dtype == np.float32
        # the same float32 computation, then rounded once to the nearest float16
        np.testing.assert_array_equal(x16, x32.astype(np.float16))
    for path, dtype in ((half, "float16"), (full, "float32")):
        info = json.loads(cli("info", str(path), "--json").stdout)
        assert info["n_images"] == 6 and info["dim"] == _raw(path, S.IMAGE_EMB).shape[1]
        with h5py.File(path, "r") as f:
            assert f.attrs["precision"] == dtype
        assert cli("verify", str(path)).returncode == 0


def test_analyses_read_float16_stores(half, tmp_path, cli):
    x, y = _raw(half, S.IMAGE_EMB), _raw(half, S.TEXT_EMB)
    assert x.dtype == y.dtype == np.float16
    # L2M (Liang et al. 2022): the distance between the means of the unit rows, in float64
    xh = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    yh = y.astype(np.float64) / np.linalg.norm(y.astype(np.float64), axis=1, keepdims=True)
    l2m = np.linalg.norm(xh.mean(0) - yh.mean(0))
    gap = cli("gap", str(half), "--json")
    assert gap.returncode == 0, gap.stderr
    doc = json.loads(gap.stdout)
    assert doc["n_images"] == 6 and doc["n_texts"] == len(y)
    np.testing.assert_allclose(doc["l2m"], l2m, rtol=1e-5)
    retrieval = cli("retrieval", str(half), "--json")
    assert retrieval.returncode == 0, retrieval.stderr
    # t2i R@k (CLIP_benchmark): the share of captions whose own image is among the top k
    owner = _raw(half, S.TEXT_IMAGE_ROW)
    ranks = np.argsort(-(yh @ xh.T), axis=1, kind="stable")
    for k in (1, 5):
        hits = (ranks[:, :k] == owner[:, None]).any(1).mean()
        assert json.loads(retrieval.stdout)["t2i"][f"R@{k}"] == float(hits)
    out = tmp_path / "export"
    assert cli("export", str(half), "--out", str(out)).returncode == 0
    np.testing.assert_array_equal(np.load(out / "image_embeddings.npy"), x.astype(np.float32))


def test_bad_or_changed_store_dtype_is_one_line(half, tiny_coco, tmp_path, cli):
    out = tmp_path / "s.h5"
    r = _extract(cli, tiny_coco, out, "--store-dtype", "bfloat16")
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.strip().splitlines() == [
        "mgap: error: --store-dtype must be float16 or float32, got 'bfloat16'; "
        "float16 halves the store; float32 keeps every bit the model computed"
    ]
    shutil.copyfile(half, out)  # a float16 store of the same run, resumed as float32
    before = out.read_bytes()
    r = _extract(cli, tiny_coco, out, "--store-dtype", "float32")
    assert r.returncode == 1 and out.read_bytes() == before
    (line,) = r.stderr.strip().splitlines()
    assert "store dtype (--store-dtype) changed (was float16, now float32)" in line
