"""`mgap import`, `info`, `verify`, `export`, `ls` on real published embeddings and on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_import_convirt_then_info_verify_export(tmp_path, convirt_dir, cli):
    src = convirt_dir / "features_convirt.npy"
    out = tmp_path / "convirt.h5"
    r = cli("import", str(src), "--out", str(out), "--name", "convirt")
    assert r.returncode == 0, r.stderr
    info = json.loads(cli("info", str(out), "--json").stdout)
    assert (info["status"], info["n_images"], info["n_texts"], info["dim"]) == (
        "complete",
        500,
        500,
        512,
    )
    assert cli("verify", str(out)).returncode == 0
    r = cli("export", str(out), "--out", str(tmp_path / "ex"))
    assert r.returncode == 0, r.stderr
    raw = np.load(src)
    np.testing.assert_array_equal(np.load(tmp_path / "ex" / "image_embeddings.npy"), raw[0])
    np.testing.assert_array_equal(np.load(tmp_path / "ex" / "text_embeddings.npy"), raw[1])
    listing = json.loads(cli("ls", "--store-dir", str(tmp_path), "--json").stdout)
    assert [s["name"] for s in listing["stores"]] == ["convirt.h5"]


def test_import_pt_pair_and_separate_npy(tmp_path, cli, rng):
    torch = pytest.importorskip("torch")
    x, y = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    torch.save(torch.from_numpy(x), tmp_path / "coco_clip_img.pt")
    torch.save({"features": torch.from_numpy(y)}, tmp_path / "coco_clip_txt.pt")
    r = cli(
        "import",
        str(tmp_path / "coco_clip_img.pt"),
        str(tmp_path / "coco_clip_txt.pt"),
        "--out",
        str(tmp_path / "pt.h5"),
    )
    assert r.returncode == 0, r.stderr
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", y)
    (tmp_path / "cats.txt").write_text("\n".join(["cat", "dog"] * 3))
    r = cli(
        "import",
        "--image",
        str(tmp_path / "a.npy"),
        "--text",
        str(tmp_path / "b.npy"),
        "--categories",
        str(tmp_path / "cats.txt"),
        "--out",
        str(tmp_path / "np.h5"),
    )
    assert r.returncode == 0, r.stderr
    from mgap.store import open_store

    for name in ("pt.h5", "np.h5"):
        s = open_store(tmp_path / name)
        np.testing.assert_array_equal(s.image_embeddings(np.float32), x)
        np.testing.assert_array_equal(s.text_embeddings(np.float32), y)
    assert list(open_store(tmp_path / "np.h5").primary_names()) == ["cat", "dog"] * 3


def test_import_lorentz_records_geometry(tmp_path, cli, rng):
    np.save(tmp_path / "h.npy", rng.normal(size=(2, 5, 3)))
    r = cli(
        "import",
        str(tmp_path / "h.npy"),
        "--out",
        str(tmp_path / "h.h5"),
        "--geometry",
        "lorentz",
        "--curvature",
        "0.5",
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(cli("info", str(tmp_path / "h.h5"), "--json").stdout)
    assert info["geometry"] == "lorentz" and info["attrs"]["curvature"] == 0.5


@pytest.mark.parametrize(
    "setup,args,code",
    [
        (lambda d: np.save(d / "x.npy", np.zeros((3, 4, 2))), ["x.npy"], 2),  # wrong shape
        (lambda d: None, ["missing.npy"], 2),
        (lambda d: (d / "junk.npy").write_bytes(b"not numpy"), ["junk.npy"], 2),
        (lambda d: np.save(d / "x.npy", np.zeros((2, 4, 2))), ["x.npy", "--geometry", "sphere"], 2),
    ],
)
def test_import_bad_input_is_one_line(tmp_path, cli, setup, args, code):
    setup(tmp_path)
    r = cli("import", *args, "--out", str(tmp_path / "o.h5"), cwd=tmp_path)
    assert r.returncode == code
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_info_on_non_hdf5_and_verify_on_partial(tmp_path, cli):
    (tmp_path / "bad.h5").write_text("hello")
    r = cli("info", str(tmp_path / "bad.h5"))
    assert (
        r.returncode == 1
        and "not a readable mgap store" in r.stderr
        and "Traceback" not in r.stderr
    )
    from mgap.store import StoreLayout, create_store

    layout = StoreLayout(
        image_ids=["a", "b"],
        image_paths=["", ""],
        captions=["x", "y"],
        caption_image_row=np.array([0, 1]),
    )
    create_store(tmp_path / "p.h5", layout, {}, image_dim=2, text_dim=2)
    r = cli("verify", str(tmp_path / "p.h5"))
    assert r.returncode == 1 and "status is 'partial'" in r.stderr
