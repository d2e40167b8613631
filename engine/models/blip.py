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

from mgap.engine.models.base import LayerStates, TowerLayers
from mgap.engine.models.hf_parts import (
    PRECISIONS,
    as_embedding,
    check_request,
    gather_layers,
    hidden_states_of,
)
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
#: side -> (pooling, lens) of `--layers` (docs/depth.md); layer k = hidden_states[k]
LAYERS = {
    "image": (
        "[CLS] hidden_states[k][:, 0] of vision_model (layer 0: patch plus position embeddings)",
        "vision_model.post_layernorm then vision_proj (the ITC image head)",
    ),
    "text": (
        "[CLS] hidden_states[k][:, 0] of the unimodal text_encoder (layer 0: the embeddings "
        "after their LayerNorm)",
        "text_proj (the ITC text head; BERT blocks end in their own LayerNorm)",
    ),
}


class BlipAdapter(ITCAdapter):
    family = "blip"
    architecture = ARCHITECTURE
    embedding_image = "vision_proj(vision_model.last_hidden_state[:, 0]) (ITC, unnormalised)"
    embedding_text = (
        "text_proj(text_encoder.last_hidden_state[:, 0]) (unimodal [CLS], ITC, unnormalised)"
    )

    def _images(self, batch: torch.Tensor, hidden: bool) -> tuple[torch.Tensor, Any]:
        output = self.model.vision_model(
            pixel_values=batch.to(self.device, self.dtype), output_hidden_states=hidden
        )
        return as_embedding(self.model.vision_proj(output.last_hidden_state[:, 0])), output

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self._images(batch, hidden=False)[0]

    def encode_images_layers(
        self, batch: torch.Tensor, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "image", layers, spaces, self.tower_layers("image"))
        embedding, output = self._images(batch, hidden=True)
        vision = self.model.vision_model
        return embedding, gather_layers(
            hidden_states_of(output, self.spec),
            layers,
            spaces,
            lambda h: h[:, 0],
            lambda h: self.model.vision_proj(vision.post_layernorm(h[:, 0])),
        )

    def _texts(self, texts: Sequence[str], hidden: bool) -> tuple[torch.Tensor, Any]:
        tokens = self.tokenize(texts)
        output = self.model.text_encoder(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            output_hidden_states=hidden,
        )
        return as_embedding(self.model.text_proj(output.last_hidden_state[:, 0])), output

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._texts(texts, hidden=False)[0]

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "text", layers, spaces, self.tower_layers("text"))
        embedding, output = self._texts(texts, hidden=True)
        return embedding, gather_layers(
            hidden_states_of(output, self.spec),
            layers,
            spaces,
            lambda h: h[:, 0],
            lambda h: self.model.text_proj(h[:, 0]),
        )

    def tower_layers(self, side: str) -> TowerLayers:
        config = self.model.config
        tower = config.vision_config if side == "image" else config.text_config
        return TowerLayers(int(tower.num_hidden_layers) + 1, *LAYERS[side])


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
