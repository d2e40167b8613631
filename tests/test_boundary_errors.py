"""Every bad input named in issue 17 item 8 ends in one line naming the input, the problem
and the fix, with exit 1 or 2: never the catch-all (`mgap: error: OverflowError: ...`),
a traceback, click's boxed usage panel, "Aborted." or a silent success.

The CLI runs in-process through its console entry point (`test_fuzz_inputs.run_cli`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_fuzz_inputs import run_cli  # noqa: E402

from mgap.core.errors import MgapError  # noqa: E402
from mgap.engine.datasets import load_manifest  # noqa: E402
from mgap.store.writer import StoreLayout  # noqa: E402


def _fails_in_one_line(args: list[str], *words: str, code: int | None = None) -> str:
    rc, err = run_cli(args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc in (1, 2) and (code is None or rc == code), (rc, err)
    assert len(lines) == 1 and lines[0].startswith("mgap: error: "), err
    assert "MGAP_DEBUG" not in err and "Traceback" not in err and "Aborted" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def store(make_store, rng):
    x = rng.normal(size=(30, 4))
    return make_store("s.h5", X=x, Y=x + rng.normal(size=(30, 4)) * 0.1)


# ---- the command line itself ---------------------------------------------------------------
def test_a_click_usage_error_is_one_line_not_a_box():
    line = _fails_in_one_line(["gap", "--bogus"], "No such option: --bogus", code=2)
    assert "mgap gap --help" in line


@pytest.mark.parametrize("command", [["plot"], ["neighbours"]])
def test_seed_minus_one_is_a_usage_error(store, command):
    _fails_in_one_line([*command, str(store), "--seed", "-1"], "--seed", code=2)


def test_rbf_sigma_that_degenerates_the_kernel_is_refused(store):
    for sigma in ("1e-300", "inf", "nan"):
        _fails_in_one_line(
            ["cka", f"{store}:image", f"{store}:text", "--kernel", "rbf", "--sigma", sigma],
            "--sigma",
            "degenerate",
        )


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--n-neighbors", "1", "n_neighbors=1 is outside"),
        ("--min-dist", "-0.5", "min_dist=-0.5 is outside"),
        ("--min-dist", "5", "larger than spread"),
    ],
)
def test_umap_parameters_out_of_range(store, option, value, words):
    _fails_in_one_line(["plot", str(store), "--method", "umap", option, value], words, code=2)


def test_tsne_perplexity_out_of_range(store):
    _fails_in_one_line(["plot", str(store), "--method", "tsne", "--perplexity", "0"], "perplexity")


def test_nan_rows_fail_in_one_line_not_with_sklearn_text(store):
    with h5py.File(store, "r+") as f:
        f["images/embeddings"][3] = np.nan
    _fails_in_one_line(["gap", str(store)], "contain NaN or inf", "mgap verify")


# ---- extract options and specs (all refused before a model is loaded) ------------------------
def _extract(tiny_coco: Path, *extra: str) -> list[str]:
    return ["extract", "-d", "coco", "--data-root", str(tiny_coco), "--split", "train2017", *extra]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--workers", "-1"], "--workers must be 0 or more"),
        (["--block-rows", "1e9"], "--block-rows"),
        (["--block-rows", "1000000000"], "--block-rows must be in 1..65536"),
        (["-m", "open_clip:" + "V" * 5000], "model spec"),
        (["-m", "open_clip:ViT-S-32\x01"], "control characters"),
    ],
)
def test_extract_options_are_checked_at_the_boundary(tiny_coco, tmp_path, extra, words):
    model = [] if "-m" in extra else ["-m", "open_clip:ViT-S-32@random"]
    _fails_in_one_line(_extract(tiny_coco, *model, *extra, "--out", str(tmp_path / "s.h5")), words)


def test_store_dir_that_is_a_file(tiny_coco, tmp_path):
    file = tmp_path / "afile"
    file.write_text("x")
    args = _extract(tiny_coco, "-m", "open_clip:ViT-S-32@random", "--store-dir", str(file))
    _fails_in_one_line(args, "is a file", code=2)


def test_unknown_device_is_named(tiny_coco, tmp_path):
    args = _extract(tiny_coco, "-m", "open_clip:ViT-S-32@random", "--limit", "1")
    _fails_in_one_line([*args, "--device", "bogus", "--out", str(tmp_path / "s.h5")], "'bogus'")


def test_a_checkpoint_that_is_not_one_is_named(tiny_coco, tmp_path):
    not_a_checkpoint = tmp_path / "passwd"
    not_a_checkpoint.write_text("root:x:0:0:root:/root:/bin/bash\n")
    args = _extract(tiny_coco, "-m", f"open_clip:ViT-S-32@{not_a_checkpoint}", "--limit", "1")
    line = _fails_in_one_line(
        [*args, "--out", str(tmp_path / "s.h5")], "not an open_clip checkpoint"
    )
    assert not (tmp_path / "s.h5").exists() and "root:x" not in line


def test_open_clip_refuses_an_option_it_would_ignore(tiny_coco, tmp_path):
    args = _extract(tiny_coco, "-m", "open_clip:ViT-S-32@random", "--limit", "1")
    _fails_in_one_line(
        [*args, "--model-option", "pool=mean", "--out", str(tmp_path / "s.h5")], "pool"
    )


# ---- annotation records ------------------------------------------------------------------
def _coco(tmp_path: Path, images, annotations, raw: str | None = None) -> Path:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    text = raw if raw is not None else json.dumps({"images": images, "annotations": annotations})
    (root / "annotations" / "captions_val2017.json").write_text(text)
    return root


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ('{"images": [{"id": 1e400, "file_name": "a.jpg"}], "annotations": []}', "infinity"),
        ('{"images": [{"id": NaN, "file_name": "a.jpg"}], "annotations": []}', "NaN"),
        ("[" * 100_000 + "]" * 100_000, "nests JSON too deeply"),
        (
            '{"images": [{"id": 1, "file_name": "a.jpg"}], '
            '"annotations": [{"id": 1, "image_id": 1, "caption": null}]}',
            "caption 1 is null",
        ),
    ],
)
def test_annotation_records_are_validated(tmp_path, raw, words):
    root = _coco(tmp_path, None, None, raw)
    with pytest.raises(MgapError, match=words):
        load_manifest("coco", root, None, None)
    _fails_in_one_line(
        ["extract", "-m", "open_clip:ViT-S-32@random", "-d", "coco", "--data-root", str(root)],
        words,
    )


@pytest.mark.parametrize(
    ("caption", "words"), [("a\x00b", "NUL byte"), ("a\ud800b", "lone surrogate")]
)
def test_captions_hdf5_cannot_hold_are_refused_before_a_file_exists(tmp_path, caption, words):
    with pytest.raises(MgapError, match=words):
        StoreLayout(["1"], ["a.jpg"], [caption], np.zeros(1, dtype=np.int64))
    assert not list(tmp_path.iterdir())


# ---- import files ---------------------------------------------------------------------------
def _npy_with_header_length(path: Path, length: int) -> None:
    np.save(path, np.ones((2, 3, 4), np.float32))
    raw = bytearray(path.read_bytes())
    raw[8:10] = length.to_bytes(2, "little")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("empty.npy", lambda p: p.write_bytes(b""), "cannot read"),
        ("garbage.npy", lambda p: p.write_bytes(b"\x93NUMPY garbage" * 10), "cannot read"),
        ("strings.npy", lambda p: np.save(p, np.array([["a", "b"]] * 2)), "not real numbers"),
        ("header.npy", lambda p: _npy_with_header_length(p, 65535), "cannot read"),
        ("garbage.npz", lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 40), "cannot read"),
        ("nan.npy", lambda p: np.save(p, np.full((2, 3, 4), np.nan)), "NaN or inf"),
        ("zeros.npy", lambda p: np.save(p, np.zeros((2, 3, 4))), "all zeros"),
    ],
)
def test_import_files_fail_in_one_line(tmp_path, name, make, words):
    path = tmp_path / name
    make(path)
    _fails_in_one_line(["import", str(path), "--out", str(tmp_path / "s.h5")], words)
    assert not (tmp_path / "s.h5").exists()


def test_import_text_files_and_curvature(tmp_path, rng):
    path = tmp_path / "e.npy"
    np.save(path, rng.normal(size=(2, 3, 4)))
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"a\n\xff\xfe\nc\n")
    out = str(tmp_path / "s.h5")
    _fails_in_one_line(["import", str(path), "--out", out, "--ids", str(ids)], "not UTF-8")
    for value in ("nan", "inf", "-1"):
        _fails_in_one_line(
            ["import", str(path), "--out", out, "--geometry", "lorentz", "--curvature", value],
            "--curvature",
        )
    assert run_cli(["import", str(path), "--out", out])[0] == 0
