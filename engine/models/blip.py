"""BLIP image-text retrieval (ITM) checkpoints, embedded in their contrastive (ITC) space.

Image = `vision_proj(vision_model(pixels).last_hidden_state[:, 0])`; text =
`text_proj(text_encoder(ids, mask).last_hidden_state[:, 0])` with the text encoder in
unimodal mode (no image cross-attention). Both are stored as computed, unnormalised; their
cosine is the ITC score of `BlipForImageTextRetrieval(..., use_itm_head=False)`.

Captioning and VQA checkpoints have no text encoder or no projections: loading them as
retrieval models would fill those weights with random numbers, so they are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.hf_parts import (
    PRECISIONS,
    HFImagePreprocess,
    as_embedding,
    check_architecture,
    check_options,
    image_processing_record,
    int_option,
    refuse_random_heads,
    torch_dtype,
    weights_record,
)
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "BlipForImageTextRetrieval"
#: weights the contrastive space is made of; any of them missing means random values
CONTRASTIVE_WEIGHTS = ("vision_model.", "text_encoder.", "vision_proj.", "text_proj.")
#: LAVIS `blip_retrieval` tokenises captions to at most 35 tokens
DEFAULT_MAX_LENGTH = 35
OPTIONS = {"precision": PRECISIONS, "max_length": None}


class BlipAdapter(EmbeddingModel):
    family = "blip"
    embedding_image = "vision_proj(vision_model.last_hidden_state[:, 0]) (ITC, unnormalised)"
    embedding_text = (
        "text_proj(text_encoder.last_hidden_state[:, 0]) (unimodal [CLS], ITC, unnormalised)"
    )

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        *,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        folder: Path,
        max_length: int,
    ) -> None:
        super().__init__(spec, device)
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.folder = folder
        self.max_length = max_length
        self.dtype = next(model.parameters()).dtype

    def image_preprocess(self) -> HFImagePreprocess:
        return HFImagePreprocess(self.image_processor)

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = batch.to(self.device, self.dtype)
        cls = self.model.vision_model(pixel_values=pixels).last_hidden_state[:, 0]
        return as_embedding(self.model.vision_proj(cls))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        # right padding keeps [CLS] at index 0 and the absolute positions of every real token
        self.tokenizer.padding_side = "right"
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model.text_encoder(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).last_hidden_state
        return as_embedding(self.model.text_proj(hidden[:, 0]))

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, ARCHITECTURE),
            "preprocessing": {
                "image": image_processing_record(self.image_processor),
                "text": {
                    "tokenizer": type(self.tokenizer).__name__,
                    "padding": "longest, right",
                    "truncation": True,
                    "max_length": self.max_length,
                },
            },
            "precision": str(self.dtype).removeprefix("torch."),
        }


def load_blip(spec: ModelSpec, folder: Path, device: str, **options: object) -> BlipAdapter:
    """Load a BLIP ITM checkpoint folder; options: precision, max_length."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoTokenizer,
        BlipForImageTextRetrieval,
    )

    opts = check_options(spec, options, OPTIONS)
    check_architecture(spec, AutoConfig.from_pretrained(folder), ARCHITECTURE)
    dtype = torch_dtype(device, opts.get("precision"), gpu_default="float16")
    model, info = BlipForImageTextRetrieval.from_pretrained(
        folder, dtype=dtype, output_loading_info=True
    )
    refuse_random_heads(spec, info["missing_keys"], CONTRASTIVE_WEIGHTS)
    return BlipAdapter(
        spec,
        device,
        model=model.to(device).eval(),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
        folder=Path(folder),
        max_length=int_option(spec, opts, "max_length", DEFAULT_MAX_LENGTH),
    )
