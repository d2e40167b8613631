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
from mgap.engine.models.hf_parts import PRECISIONS, as_embedding
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

    def encode_images_all_queries(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, num_query_tokens, d): every projected query vector, for max-over-queries scores."""
        import torch

        model = self.model
        image = model.vision_model(pixel_values=batch.to(self.device, self.dtype)).last_hidden_state
        queries = model.query_tokens.expand(image.shape[0], -1, -1)
        attention = torch.ones(image.shape[:-1], dtype=torch.long, device=image.device)
        hidden = model.qformer(
            query_embeds=queries, encoder_hidden_states=image, encoder_attention_mask=attention
        ).last_hidden_state
        projection = model.vision_projection
        return as_embedding(projection(hidden.to(projection.weight.dtype)))

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encode_images_all_queries(batch).mean(dim=1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts)
        model = self.model
        hidden = model.qformer(
            query_embeds=model.embeddings(input_ids=tokens["input_ids"]),
            query_length=0,
            attention_mask=tokens["attention_mask"],
        ).last_hidden_state
        projection = model.text_projection
        return as_embedding(projection(hidden[:, 0].to(projection.weight.dtype)))

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
