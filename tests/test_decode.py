"""Decode paths on the real COCO sample: sizes, fidelity to the model's own transform, provenance."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mgap.core.errors import UsageError
from mgap.engine.datasets import load_manifest
from mgap.engine.extract.decode import (
    Encoded,
    TensorTransform,
    decode_jpegs,
    encoded,
    gpu_batches,
    input_size,
    open_rgb,
    resolve_mode,
    tensor_inputs,
)
from mgap.engine.models import load_model
from mgap.store import open_store

MODEL = "open_clip:ViT-S-32@random"
#: OpenAI CLIP's normalisation constants, as published in the CLIP repository
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, "cpu")


def _blobs(root, n):
    manifest = load_manifest("coco", root, "train2017", n)
    return [manifest.image_bytes(i) for i in range(n)]


def test_tensor_twin_of_open_clip_transform(model):
    twin = TensorTransform.from_preprocess(model.image_preprocess())
    assert input_size(model.image_preprocess()) == 224
    assert twin.size == 224 and twin.crop == (224, 224)
    np.testing.assert_allclose(twin.mean, OPENAI_MEAN)
    np.testing.assert_allclose(twin.std, OPENAI_STD)
    # a non-torchvision callable has no twin and no known size
    assert TensorTransform.from_preprocess(lambda image: image) is None
    assert input_size(lambda image: image) is None


def test_batch_normalise_is_to_tensor_then_normalize(model):
    """(x/255 - mean)/std per channel, the published ToTensor + Normalize, on uint8 input
    that arrives channels last (N, H, W, C) and leaves channels first (N, C, H, W)."""
    twin = TensorTransform.from_preprocess(model.image_preprocess())
    values = (0, 1, 128, 254, 255)
    pixels = torch.tensor(values, dtype=torch.uint8).view(1, 5, 1)
    batch = torch.cat([pixels, 255 - pixels, pixels // 2], dim=2).expand(2, 1, 5, 3)
    got = twin.normalise(batch)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 1, 5) and got.is_contiguous()
    for c, channel in enumerate((values, [255 - v for v in values], [v // 2 for v in values])):
        want = [(v / 255 - OPENAI_MEAN[c]) / OPENAI_STD[c] for v in channel]
        np.testing.assert_allclose(got[1, c, 0].numpy(), want, rtol=0, atol=2e-6)


def test_models_with_one_geometry_share_one_crop(tiny_coco, model):
    twin = TensorTransform.from_preprocess(model.image_preprocess())
    wider = dataclasses.replace(twin, size=256, crop=(240, 240))
    image = Encoded(_blobs(tiny_coco, 1)[0])
    first, again, other = tensor_inputs(image, [twin, twin, wider])
    assert first is again  # one resize for both models
    assert other.shape == (240, 240, 3) and other.dtype == torch.uint8


def test_a_torchvision_without_jpeg_decoding_falls_back_to_exact(monkeypatch, model):
    """torchvision 0.29 deprecated its decoders: once gone, `auto` must not pick a path
    that would skip every image, and asking for one says why in one line."""
    import torchvision.io

    preprocessors = [model.image_preprocess()]
    assert resolve_mode("auto", "cpu", preprocessors) == "tensor"
    monkeypatch.delattr(torchvision.io, "decode_jpeg")
    assert resolve_mode("auto", "cpu", preprocessors) == "exact"
    with pytest.raises(UsageError, match="needs torchvision.io.decode_jpeg"):
        resolve_mode("tensor", "cpu", preprocessors)


def test_draft_decodes_at_half_scale_only_when_twice_the_input(tiny_coco):
    blobs = _blobs(tiny_coco, 50)
    sizes = [Image.open(io.BytesIO(b)).size for b in blobs]
    big = next(i for i, s in enumerate(sizes) if min(s) >= 448)
    small = next(i for i, s in enumerate(sizes) if min(s) < 448)
    w, h = sizes[big]
    # DCT scale 1/2 is the largest reduction keeping the short side >= 224
    assert open_rgb(blobs[big], 224).size == ((w + 1) // 2, (h + 1) // 2)
    assert open_rgb(blobs[small], 224).size == sizes[small]
    assert open_rgb(blobs[big]).size == (w, h)


def test_tensor_path_matches_the_model_transform(tiny_coco, model):
    preprocess = model.image_preprocess()
    twin = TensorTransform.from_preprocess(preprocess)
    blobs = _blobs(tiny_coco, 12)
    crops = [tensor_inputs(Encoded(b), [twin])[0] for b in blobs]
    # the workers send uint8 crops; the batch step converts and normalises them
    assert {(c.dtype, tuple(c.shape)) for c in crops} == {(torch.uint8, (224, 224, 3))}
    ours = twin.normalise(torch.stack(crops))
    theirs = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
    assert ours.shape == theirs.shape == (12, 3, 224, 224)
    # same pixels up to resampling rounding: mean error well under one grey level
    assert (ours - theirs).abs().mean() < 0.01
    with torch.inference_mode():
        x, y = model.encode_images(ours), model.encode_images(theirs)
    assert torch.nn.functional.cosine_similarity(x, y).min() >= 0.999
    # a truncated JPEG falls back to PIL, which names the problem
    with pytest.raises(OSError, match="truncated"):
        tensor_inputs(Encoded(blobs[0][: len(blobs[0]) // 3]), [twin])
    assert decode_jpegs(blobs[:2], "cpu")[0].dtype == torch.uint8


def test_batched_device_path_equals_the_worker_path(tiny_coco, model):
    """`--decode gpu`'s batching code, run here on the CPU: JPEG bytes decoded in one call,
    other formats arriving as tensors, every model's transform on the same batch."""
    manifest = load_manifest("coco", tiny_coco, "train2017", 4)
    twin = TensorTransform.from_preprocess(model.image_preprocess())
    items = [encoded(data) for data in manifest.images_bytes(range(4))]
    assert all(isinstance(item.payload, bytes) for item in items)
    png = io.BytesIO()
    Image.open(io.BytesIO(items[1].payload)).save(png, "PNG")
    items[1] = Encoded(torch.from_numpy(np.asarray(Image.open(png)).copy()).permute(2, 0, 1))
    first, second = gpu_batches(items, [twin, twin], "cpu")
    one_by_one = twin.normalise(torch.stack([tensor_inputs(item, [twin])[0] for item in items]))
    torch.testing.assert_close(first, one_by_one)
    torch.testing.assert_close(second, first)


@pytest.mark.slow
def test_extract_records_the_decode_path_and_exact_stays_close(tiny_coco, tmp_path, cli):
    common = ["extract", "--model", MODEL, "--dataset", "coco", "--data-root", str(tiny_coco)]
    common += ["--split", "train2017", "--limit", "8", "--workers", "1", "-q"]
    assert cli(*common, "--out", str(tmp_path / "fast.h5")).returncode == 0
    r = cli(*common, "--out", str(tmp_path / "exact.h5"), "--decode", "exact")
    assert r.returncode == 0, r.stderr
    fast, exact = open_store(tmp_path / "fast.h5"), open_store(tmp_path / "exact.h5")
    assert fast.attrs["decode"].startswith("torchvision decode_jpeg")
    assert exact.attrs["decode"].startswith("full PIL decode")
    x, y = fast.image_embeddings(np.float64), exact.image_embeddings(np.float64)
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert cos.min() >= 0.999
    # resuming a store with another decode path is refused (its rows would mix)
    r = cli(*common, "--out", str(tmp_path / "fast.h5"), "--decode", "draft")
    assert r.returncode == 1 and "decode changed" in r.stderr
    r = cli(*common, "--out", str(tmp_path / "gpu.h5"), "--decode", "gpu", "--device", "cpu")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "mgap: error: --decode gpu needs a CUDA device; pass --device cuda or drop it"
    ]


@pytest.mark.gpu
def test_gpu_decode_matches_the_model_transform(tiny_coco, tmp_path, cli):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    common = ["extract", "--model", MODEL, "--dataset", "coco", "--data-root", str(tiny_coco)]
    common += ["--split", "train2017", "--device", "cuda", "--json", "-q"]
    r = cli(*common, "--out", str(tmp_path / "gpu.h5"), "--decode", "gpu")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stores"][0]["device"].startswith("cuda")
    assert cli(*common, "--out", str(tmp_path / "exact.h5"), "--decode", "exact").returncode == 0
    x = open_store(tmp_path / "gpu.h5").image_embeddings(np.float64)
    y = open_store(tmp_path / "exact.h5").image_embeddings(np.float64)
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert open_store(tmp_path / "gpu.h5").attrs["decode"].startswith("nvJPEG")
    assert cos.min() >= 0.999
