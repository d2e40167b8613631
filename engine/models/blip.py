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
from typing import TYPE_CHECKING

from mgap.engine.models.hf_parts import PRECISIONS, as_embedding
from mgap.engine.models.itc import ITCAdapter, load_itc
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "BlipForImageTextRetrieval"
#: weights the contrastive space is made of; any of them missing means random values
CONTRASTIVE_WEIGHTS = ("vision_model.", "text_encoder.", "vision_proj.", "text_proj.")
#: LAVIS `blip_retrieval` tokenises captions to at most 35 tokens
DEFAULT_MAX_LENGTH = 35
OPTIONS = {"precision": PRECISIONS, "max_length": None}


class BlipAdapter(ITCAdapter):
    family = "blip"
    architecture = ARCHITECTURE
    embedding_image = "vision_proj(vision_model.last_hidden_state[:, 0]) (ITC, unnormalised)"
    embedding_text = (
        "text_proj(text_encoder.last_hidden_state[:, 0]) (unimodal [CLS], ITC, unnormalised)"
    )

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = batch.to(self.device, self.dtype)
        cls = self.model.vision_model(pixel_values=pixels).last_hidden_state[:, 0]
        return as_embedding(self.model.vision_proj(cls))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts)
        hidden = self.model.text_encoder(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).last_hidden_state
        return as_embedding(self.model.text_proj(hidden[:, 0]))


def load_blip(spec: ModelSpec, folder: Path, device: str, **options: object) -> BlipAdapter:
    """Load a BLIP ITM checkpoint folder; options: precision, max_length."""
    from transformers import BlipForImageTextRetrieval

    return load_itc(
        BlipAdapter,
        BlipForImageTextRetrieval,
        spec,
        folder,
        device,
        options,
        allowed=OPTIONS,
        contrastive_weights=CONTRASTIVE_WEIGHTS,
        default_max_length=DEFAULT_MAX_LENGTH,
    )
