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
from mgap.errors import UsageError

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


class Blip2Adapter(EmbeddingModel):
    family = "blip2"
    embedding_image = (
        "mean over queries of vision_projection(qformer(query_tokens, vision_model)"
        ".last_hidden_state) (ITC, unnormalised)"
    )
    embedding_text = "text_projection(qformer(text).last_hidden_state[:, 0]) (text-only [CLS], ITC, unnormalised)"

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
        self.dtype = model.vision_model.embeddings.patch_embedding.weight.dtype

    def image_preprocess(self) -> HFImagePreprocess:
        return HFImagePreprocess(self.image_processor)

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
        # right padding keeps [CLS] at index 0 and the absolute positions of every real token
        self.tokenizer.padding_side = "right"
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
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
            "num_query_tokens": int(self.model.config.num_query_tokens),
            "query_pooling": "mean",
        }


def load_blip2(spec: ModelSpec, folder: Path, device: str, **options: object) -> Blip2Adapter:
    """Load a BLIP-2 ITM checkpoint folder; options: precision, max_length. The Q-Former
    stays in fp32 whatever the precision (transformers keeps it there)."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoTokenizer,
        Blip2ForImageTextRetrieval,
    )

    opts = check_options(spec, options, OPTIONS)
    config = AutoConfig.from_pretrained(folder)
    check_architecture(spec, config, ARCHITECTURE)
    if not getattr(config.qformer_config, "use_qformer_text_input", False):
        raise UsageError(
            f"{spec} has a Q-Former without a text path (use_qformer_text_input is false), "
            "so it cannot embed captions",
            hint="use an image-text retrieval checkpoint such as hf:Salesforce/blip2-itm-vit-g",
        )
    dtype = torch_dtype(device, opts.get("precision"), gpu_default="float16")
    model, info = Blip2ForImageTextRetrieval.from_pretrained(
        folder, dtype=dtype, output_loading_info=True
    )
    refuse_random_heads(spec, info["missing_keys"], CONTRASTIVE_WEIGHTS)
    return Blip2Adapter(
        spec,
        device,
        model=model.to(device).eval(),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
        folder=Path(folder),
        max_length=int_option(spec, opts, "max_length", DEFAULT_MAX_LENGTH),
    )
