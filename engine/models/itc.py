"""The shared shape of BLIP and BLIP-2 ITC adapters: a retrieval checkpoint folder with a
BERT tokenizer and an image processor, loaded only when its contrastive heads are real."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.checkpoints import logit_scale_attrs
from mgap.engine.models.hf_parts import (
    HFImagePreprocess,
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


class ITCAdapter(EmbeddingModel):
    """Subclasses set `architecture` and implement the encoders on `self.model`."""

    architecture = ""

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

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        # right padding keeps [CLS] at index 0 and the absolute positions of every real token
        self.tokenizer.padding_side = "right"
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, self.architecture),
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
            **logit_scale_attrs(self.model),
        }


A = TypeVar("A", bound=ITCAdapter)


def load_itc(
    adapter: type[A],
    model_class: Any,
    spec: ModelSpec,
    folder: Path,
    device: str,
    options: dict[str, object],
    *,
    allowed: dict[str, object],
    contrastive_weights: Sequence[str],
    default_max_length: int,
    check_config: Callable[[Any], None] | None = None,
) -> A:
    """Check the folder's architecture (and `check_config`), load, refuse random heads."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    opts = check_options(spec, options, allowed)
    config = AutoConfig.from_pretrained(folder)
    check_architecture(spec, config, adapter.architecture)
    if check_config is not None:
        check_config(config)
    dtype = torch_dtype(device, opts.get("precision"), gpu_default="float16")
    model, info = model_class.from_pretrained(folder, dtype=dtype, output_loading_info=True)
    refuse_random_heads(spec, info["missing_keys"], contrastive_weights)
    return adapter(
        spec,
        device,
        model=model.to(device).eval(),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
        folder=Path(folder),
        max_length=int_option(spec, opts, "max_length", default_max_length),
    )
