"""Sentence encoders (`st:`) on the real MiniLM folder; image-only encoders (`vision:`) on
tiny random-init DINOv2, ViT and ConvNeXt, and timm architectures at random init."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_clip_models import make_tiny_vision

from mgap.core.errors import UsageError
from mgap.engine.models import load_model

TEXTS = [
    "A man riding a wave on top of a surfboard.",
    "two dogs",
    "a plate of food with broccoli and rice next to a glass of water on a wooden table",
]


def images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    sizes = [(40, 60), (64, 64), (90, 30)]
    return [
        Image.fromarray(rng.integers(0, 255, (*sizes[i % 3], 3), dtype=np.uint8)) for i in range(n)
    ]


def embed_images(model, imgs) -> torch.Tensor:
    pre = model.image_preprocess()
    with torch.inference_mode():
        return model.encode_images(torch.stack([pre(im) for im in imgs]))


def pixels(model, imgs) -> torch.Tensor:
    pre = model.image_preprocess()
    return torch.stack([pre(im) for im in imgs])


def assert_image_batch_invariant(model, imgs) -> None:
    batch = embed_images(model, imgs)
    for i, im in enumerate(imgs):
        torch.testing.assert_close(embed_images(model, [im])[0], batch[i], atol=1e-5, rtol=1e-4)


# ---- sentence encoders -----------------------------------------------------------------


def test_st_matches_sentence_transformers_encode(minilm_dir):
    from sentence_transformers import SentenceTransformer

    model = load_model(f"st:{minilm_dir}")
    assert not model.has_image and model.has_text
    assert "Normalize" in model.embedding_text and "Pooling" in model.embedding_text
    with torch.inference_mode():
        ours = model.encode_texts(TEXTS)
        alone = [model.encode_texts([t])[0] for t in TEXTS]
    assert ours.shape == (3, 384) and ours.dtype == torch.float32
    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)
    for i, vec in enumerate(alone):  # batch invariance: padding to a longer caption
        torch.testing.assert_close(vec, ours[i], atol=1e-5, rtol=1e-4)
    assert model.provenance()["weights"]["folder"] == str(minilm_dir.resolve())
    with pytest.raises(UsageError, match="no image tower"):
        model.image_preprocess()


def test_st_rejects_unknown_options(minilm_dir):
    with pytest.raises(UsageError, match="does not take the option 'pool'"):
        load_model(f"st:{minilm_dir}", pool="mean")


# ---- transformers vision encoders ------------------------------------------------------


@pytest.fixture(scope="module")
def vision_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    return {kind: make_tiny_vision(root / kind, kind) for kind in ("dinov2", "vit", "convnext")}


def test_dinov2_cls_and_mean_are_the_documented_tokens(vision_dirs):
    folder = vision_dirs["dinov2"]
    cls_model = load_model(f"vision:{folder}")
    mean_model = load_model(f"vision:{folder}", pool="mean")
    assert cls_model.has_image and not cls_model.has_text
    assert cls_model.provenance()["pool"] == "cls" and mean_model.provenance()["pool"] == "mean"
    imgs = images(3)
    cls_emb, mean_emb = embed_images(cls_model, imgs), embed_images(mean_model, imgs)
    assert cls_emb.shape == mean_emb.shape == (3, 32) and cls_emb.dtype == torch.float32
    with torch.inference_mode():
        hidden = cls_model.model(pixel_values=pixels(cls_model, imgs)).last_hidden_state
    # 1 CLS + 2 register tokens + 16 patches: the mean skips the first three
    assert hidden.shape[1] == 1 + 2 + 16
    torch.testing.assert_close(cls_emb, hidden[:, 0])
    torch.testing.assert_close(mean_emb, hidden[:, 3:].mean(1))
    assert "last_hidden_state[:, 3:]" in mean_model.embedding_image
    assert_image_batch_invariant(cls_model, imgs)
    again = load_model(f"vision:{folder}")
    assert torch.equal(embed_images(again, imgs), cls_emb)


def test_vit_cls_is_the_token_not_the_random_pooler(vision_dirs):
    model = load_model(f"vision:{vision_dirs['vit']}")
    imgs = images(2)
    emb = embed_images(model, imgs)
    with torch.inference_mode():
        out = model.model(pixel_values=pixels(model, imgs))
    torch.testing.assert_close(emb, out.last_hidden_state[:, 0])
    assert not torch.allclose(emb, out.pooler_output)
    pre = model.image_preprocess()
    assert torch.equal(pickle.loads(pickle.dumps(pre))(imgs[0]), pre(imgs[0]))


def test_convnext_mean_is_the_pooled_output(vision_dirs):
    folder = vision_dirs["convnext"]
    model = load_model(f"vision:{folder}")
    imgs = images(3)
    emb = embed_images(model, imgs)
    with torch.inference_mode():
        out = model.model(pixel_values=pixels(model, imgs))
        by_hand = model.model.layernorm(out.last_hidden_state.mean((2, 3)))
    assert model.provenance()["pool"] == "mean" and emb.shape == (3, 16)
    torch.testing.assert_close(emb, by_hand)
    assert_image_batch_invariant(model, imgs)
    with pytest.raises(UsageError, match="no CLS token"):
        load_model(f"vision:{folder}", pool="cls")


def test_vision_bad_pool_is_a_usage_error(vision_dirs):
    with pytest.raises(UsageError, match="pool='max'|pool=.max"):
        load_model(f"vision:{vision_dirs['vit']}", pool="max")


def test_vision_refuses_two_tower_models(tmp_path):
    from tiny_clip_models import make_tiny_clip

    folder = make_tiny_clip(tmp_path / "clip")
    with pytest.raises(UsageError, match="use hf:"):
        load_model(f"vision:{folder}")


# ---- timm ------------------------------------------------------------------------------


def test_timm_random_pools_token_or_average():
    """timm's own tiny test ViT (the same VisionTransformer class as vit_base_*)."""
    cls_model = load_model("vision:timm/test_vit@random", pool="cls")
    mean_model = load_model("vision:timm/test_vit@random", pool="mean")
    assert "global_pool='token'" in cls_model.embedding_image
    assert "global_pool='avg'" in mean_model.embedding_image
    imgs = images(2)
    cls_emb, mean_emb = embed_images(cls_model, imgs), embed_images(mean_model, imgs)
    assert cls_emb.shape == mean_emb.shape == (2, 64) and cls_emb.dtype == torch.float32
    with torch.inference_mode():
        tokens = cls_model.model.forward_features(pixels(cls_model, imgs))
        mean_tokens = mean_model.model.forward_features(pixels(mean_model, imgs))
    # token pooling: the CLS token; avg pooling (timm then norms after pooling): patch mean
    torch.testing.assert_close(cls_emb, cls_model.model.fc_norm(tokens[:, 0]))
    prefix = mean_model.model.num_prefix_tokens
    torch.testing.assert_close(
        mean_emb, mean_model.model.fc_norm(mean_tokens[:, prefix:].mean(1)), atol=1e-5, rtol=1e-4
    )
    again = load_model("vision:timm/test_vit@random", pool="cls")
    assert torch.equal(embed_images(again, imgs), cls_emb)
    pre = cls_model.image_preprocess()
    assert torch.equal(pickle.loads(pickle.dumps(pre))(imgs[0]), pre(imgs[0]))


def test_timm_unknown_model_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown timm model"):
        load_model("vision:timm/no_such_net@random")
