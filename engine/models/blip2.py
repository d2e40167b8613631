"""BLIP-2 image-text retrieval checkpoints (`Blip2ForImageTextRetrieval`, e.g.
`Salesforce/blip2-itm-vit-g`), embedded in the Q-Former's contrastive space.

Image = mean over the query tokens of `vision_projection(qformer(query_tokens,
cross-attending to vision_model(pixels).last_hidden_state))`; text =
`text_projection(qformer(embeddings(ids), mask).last_hidden_state[:, 0])`, the Q-Former run
on text alone. `encode_images_all_queries` returns every projected query vector, which the
model's own ITC score uses (max over queries of the cosine); the store keeps the mean.

`Blip2Model.get_image_features`/`get_text_features` are not these embeddings (they return
vision-tower and language-model outputs), and generation checkpoints (`Blip2ForConditional
Generation`, e.g. blip2-opt-2.7b) have no text projection, so they are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
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

ARCHITECTURE = "Blip2ForImageTextRetrieval"
CONTRASTIVE_WEIGHTS = (
    "vision_model.",
    "query_tokens",
    "embeddings.",
    "qformer.",
    "vision_projection.",
    "text_projection.",
)
#: LAVIS `blip2` (Q-Former) tokenises captions to at most 32 tokens
DEFAULT_MAX_LENGTH = 32
OPTIONS = {"precision": PRECISIONS, "max_length": None}
#: side -> (pooling, lens) of `--layers` (docs/depth.md); layer k = hidden_states[k]
LAYERS = {
    "image": (
        "[CLS] hidden_states[k][:, 0] of vision_model (layer 0: patch plus position embeddings)",
        "",  # the image embedding is the Q-Former's cross-attention over the last layer only
    ),
    "text": (
        "[CLS] hidden_states[k][:, 0] of the Q-Former run on text alone (no queries, no "
        "cross-attention; layer 0: the embeddings after the Q-Former's input LayerNorm)",
        "text_projection (the ITC text head; BERT blocks end in their own LayerNorm)",
    ),
}


class Blip2Adapter(ITCAdapter):
    family = "blip2"
    architecture = ARCHITECTURE
    embedding_image = (
        "mean over queries of vision_projection(qformer(query_tokens, vision_model)"
        ".last_hidden_state) (ITC, unnormalised)"
    )
    embedding_text = "text_projection(qformer(text).last_hidden_state[:, 0]) (text-only [CLS], ITC, unnormalised)"

    def __init__(self, spec: ModelSpec, device: str, **parts: Any) -> None:
        super().__init__(spec, device, **parts)
        # the Q-Former stays in fp32 whatever the precision: inputs follow the vision tower
        self.dtype = self.model.vision_model.embeddings.patch_embedding.weight.dtype

    def _vision(self, batch: torch.Tensor, hidden: bool) -> Any:
        return self.model.vision_model(
            pixel_values=batch.to(self.device, self.dtype), output_hidden_states=hidden
        )

    def _queries(self, image: torch.Tensor) -> torch.Tensor:
        """(B, num_query_tokens, d): the Q-Former's projected queries over the image tokens."""
        import torch

        model = self.model
        queries = model.query_tokens.expand(image.shape[0], -1, -1)
        attention = torch.ones(image.shape[:-1], dtype=torch.long, device=image.device)
        hidden = model.qformer(
            query_embeds=queries, encoder_hidden_states=image, encoder_attention_mask=attention
        ).last_hidden_state
        projection = model.vision_projection
        return as_embedding(projection(hidden.to(projection.weight.dtype)))

    def encode_images_all_queries(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, num_query_tokens, d): every projected query vector, for max-over-queries scores."""
        return self._queries(self._vision(batch, hidden=False).last_hidden_state)

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encode_images_all_queries(batch).mean(dim=1)

    def encode_images_layers(
        self, batch: torch.Tensor, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "image", layers, spaces, self.tower_layers("image"))
        output = self._vision(batch, hidden=True)
        embedding = self._queries(output.last_hidden_state).mean(dim=1)
        states = hidden_states_of(output, self.spec)
        return embedding, gather_layers(states, layers, spaces, lambda h: h[:, 0], None)

    def _texts(self, texts: Sequence[str], hidden: bool) -> tuple[torch.Tensor, Any]:
        tokens = self.tokenize(texts)
        model = self.model
        output = model.qformer(
            query_embeds=model.embeddings(input_ids=tokens["input_ids"]),
            query_length=0,
            attention_mask=tokens["attention_mask"],
            output_hidden_states=hidden,
        )
        return as_embedding(self._text_head(output.last_hidden_state[:, 0])), output

    def _text_head(self, cls: torch.Tensor) -> torch.Tensor:
        projection = self.model.text_projection
        return projection(cls.to(projection.weight.dtype))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._texts(texts, hidden=False)[0]

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "text", layers, spaces, self.tower_layers("text"))
        embedding, output = self._texts(texts, hidden=True)
        states = hidden_states_of(output, self.spec)
        pool = self._text_head
        return embedding, gather_layers(
            states, layers, spaces, lambda h: h[:, 0], lambda h: pool(h[:, 0])
        )

    def tower_layers(self, side: str) -> TowerLayers:
        config = self.model.config
        tower = config.vision_config if side == "image" else config.qformer_config
        return TowerLayers(int(tower.num_hidden_layers) + 1, *LAYERS[side])

    def provenance(self) -> dict[str, object]:
        return {
            **super().provenance(),
            "num_query_tokens": int(self.model.config.num_query_tokens),
            "query_pooling": "mean",
        }


def load_blip2(spec: ModelSpec, folder: Path, device: str, **options: object) -> Blip2Adapter:
    """Load a BLIP-2 ITM checkpoint folder; options: precision, max_length. The Q-Former
    stays in fp32 whatever the precision (transformers keeps it there)."""
    from transformers import Blip2ForImageTextRetrieval

    def needs_text_path(config: Any) -> None:
        if not getattr(config.qformer_config, "use_qformer_text_input", False):
            raise UsageError(
                f"{spec} has a Q-Former without a text path (use_qformer_text_input is false), "
                "so it cannot embed captions",
                hint="use an image-text retrieval checkpoint such as hf:Salesforce/blip2-itm-vit-g",
            )

    return load_itc(
        Blip2Adapter,
        Blip2ForImageTextRetrieval,
        spec,
        folder,
        device,
        options,
        allowed=OPTIONS,
        contrastive_weights=CONTRASTIVE_WEIGHTS,
        default_max_length=DEFAULT_MAX_LENGTH,
        check_config=needs_text_path,
    )
