"""WebDataset shards built here from the real COCO sample embed exactly like the coco loader."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgap.engine.datasets import load_manifest
from mgap.store import open_store

MODEL = "open_clip:ViT-S-32@random"
N = 20  # COCO rows in the shards; one broken sample follows them
COMMON = ["--model", MODEL, "--block-rows", "8", "--batch-size", "4", "--workers", "1"]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_shards(tiny_coco: Path, out: Path) -> list[str]:
    """Three shards in the coco loader's row order; each sample uses another member style."""
    manifest = load_manifest("coco", tiny_coco, "train2017", N)
    shards = [out / f"shard-{i:05d}.tar" for i in range(3)]
    for i, record in enumerate(manifest.records):
        with tarfile.open(shards[i * 3 // N], "a") as tar:
            data = (tiny_coco / record.path).read_bytes()
            if i % 5 == 1:  # png: lossless, so the decoded pixels are the JPEG's
                buf = io.BytesIO()
                Image.open(io.BytesIO(data)).convert("RGB").save(buf, "PNG")
                _add(tar, f"{record.id}.png", buf.getvalue())
            else:
                _add(tar, f"{record.id}.jpg", data)
            if len(record.captions) == 1:
                _add(tar, f"{record.id}.txt", record.captions[0].encode())
            else:
                doc = {"captions": record.captions, "category": record.primary}
                _add(tar, f"{record.id}.json", json.dumps(doc).encode())
            if i % 4 == 0 and record.primary:
                _add(tar, f"{record.id}.cls", record.primary.encode())
    with tarfile.open(shards[2], "a") as tar:  # a truncated JPEG: skipped with its key
        _add(tar, "broken.jpg", (tiny_coco / manifest.records[0].path).read_bytes()[:500])
        _add(tar, "broken.txt", b"a broken picture")
    return [str(s) for s in shards]


@pytest.fixture
def shards(tiny_coco, tmp_path) -> Path:
    folder = tmp_path / "wds"
    folder.mkdir()
    _write_shards(tiny_coco, folder)
    return folder


def test_index_reads_keys_captions_categories_and_counts(shards, tiny_coco):
    manifest = load_manifest("webdataset", str(shards / "shard-{00000..00002}.tar"))
    coco = load_manifest("coco", tiny_coco, "train2017", N)
    assert [r.id for r in manifest.records] == [r.id for r in coco.records] + ["broken"]
    assert [r.captions for r in manifest.records[:N]] == [r.captions for r in coco.records]
    assert manifest.provenance["shards"] == 3 and manifest.provenance["samples"] == N + 1
    assert manifest.split == "wds"
    # pixels come straight from the tar member at its offset
    first = np.asarray(manifest.load_image(0))
    assert np.array_equal(first, np.asarray(coco.load_image(0)))
    assert np.array_equal(np.asarray(manifest.load_image(1)), np.asarray(coco.load_image(1)))
    # a list file names the same shards
    (shards / "shards.txt").write_text("\n".join(f"shard-{i:05d}.tar" for i in range(3)))
    listed = load_manifest("webdataset", str(shards / "shards.txt"))
    assert [r.id for r in listed.records] == [r.id for r in manifest.records]


def test_a_batch_reads_each_sample_or_names_its_problem(shards, tiny_coco):
    manifest = load_manifest("webdataset", str(shards / "shard-{00000..00002}.tar"))
    coco = load_manifest("coco", tiny_coco, "train2017", N)
    rows = [0, 7, 8, N - 1, N]
    got = list(manifest.images_bytes(rows))
    assert got[:4] == [(tiny_coco / coco.records[i].path).read_bytes() for i in rows[:4]]
    assert got[4] == (tiny_coco / coco.records[0].path).read_bytes()[:500]  # the broken one
    # a shard cut short after it was indexed, and a sample that lost its image
    last = shards / "shard-00002.tar"
    last.write_bytes(last.read_bytes()[: manifest.locations[coco.records[N - 1].id][1] + 10])
    del manifest.locations[coco.records[0].id]
    cut, none = list(manifest.images_bytes([N - 1, 0]))
    assert str(cut) == f"{last} is truncated inside sample {coco.records[N - 1].id}"
    assert str(none) == f"sample {coco.records[0].id} has no image (jpg/jpeg/png/webp)"


@pytest.mark.slow
def test_webdataset_store_equals_coco_store_row_for_row(shards, tiny_coco, tmp_path, cli):
    coco = cli(
        "extract", *COMMON, "--dataset", "coco", "--data-root", str(tiny_coco),
        "--split", "train2017", "--limit", str(N), "--out", str(tmp_path / "coco.h5"), "-q",
    )  # fmt: skip
    assert coco.returncode == 0, coco.stderr
    wds = cli(
        "extract", *COMMON, "--dataset", "webdataset",
        "--data-root", str(shards / "shard-{00000..00002}.tar"),
        "--out", str(tmp_path / "wds.h5"), "--json", "-q",
    )  # fmt: skip
    assert wds.returncode == 0, wds.stderr
    (summary,) = json.loads(wds.stdout)["stores"]
    assert summary["skipped"] == 1 and summary["n_images"] == N
    a, b = open_store(tmp_path / "coco.h5"), open_store(tmp_path / "wds.h5")
    assert list(b.skipped) == ["broken"]
    by_id = {image_id: i for i, image_id in enumerate(b.image_ids)}
    order = [by_id[i] for i in a.image_ids]
    np.testing.assert_array_equal(
        a.image_embeddings(np.float16), b.image_embeddings(np.float16)[order]
    )
    ya, yb = a.text_embeddings(np.float16), b.text_embeddings(np.float16)
    for row, image_id in enumerate(a.image_ids):
        np.testing.assert_array_equal(
            ya[a.text_image_index == row], yb[b.text_image_index == by_id[image_id]]
        )
    info = json.loads(cli("info", str(tmp_path / "wds.h5"), "--json").stdout)
    assert info["attrs"]["shards"] == 3 and info["attrs"]["samples"] == N + 1
    listing = cli("ls", "--store-dir", str(tmp_path), "--json")
    entry = {e["name"]: e for e in json.loads(listing.stdout)["stores"]}["wds.h5"]
    assert entry["shards"] == 3 and entry["samples"] == N + 1


def test_missing_shard_and_tar_without_images_are_one_line(shards, tmp_path, cli):
    r = cli(
        "extract", "--model", MODEL, "--dataset", "webdataset",
        "--data-root", str(shards / "shard-{00000..00004}.tar"), "--out", str(tmp_path / "x.h5"),
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"mgap: error: shard {shards / 'shard-00003.tar'} does not exist (2 of 5 shards "
        "missing); check the brace pattern or the list file"
    ]
    with tarfile.open(tmp_path / "texts.tar", "w") as tar:
        _add(tar, "a.txt", b"only a caption")
    r = cli(
        "extract", "--model", MODEL, "--dataset", "webdataset",
        "--data-root", str(tmp_path / "texts.tar"), "--out", str(tmp_path / "y.h5"),
    )  # fmt: skip
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "holds no images (no jpg/jpeg/png/webp members)" in r.stderr
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
