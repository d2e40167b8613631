"""`hf:REPO_OR_FOLDER`: transformers two-tower models, dispatched on the config's `model_type`.

CLIP and SigLIP are handled here; BLIP, BLIP-2 and ViLT live in their own modules (docs/design.md §8).
The embedding is the projected feature of `get_image_features`/`get_text_features`; in
transformers 5 those return a model output whose `pooler_output` holds it, in 4.x a tensor.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.checkpoints import logit_scale_attrs
from mgap.engine.models.hf_parts import (
    HFImagePreprocess,
    check_options,
    image_processing_record,
    weights_record,
)
from mgap.engine.models.hub import resolve_pretrained
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

#: model_type -> (module, loader) for families another module owns
DELEGATES = {
    "blip": ("mgap.engine.models.blip", "load_blip"),
    "blip-2": ("mgap.engine.models.blip2", "load_blip2"),
    "blip_2": ("mgap.engine.models.blip2", "load_blip2"),
    "vilt": ("mgap.engine.models.vilt", "load_vilt"),
}
CLIP_TYPES = ("clip",)
SIGLIP_TYPES = ("siglip", "siglip2")
SUPPORTED = (*CLIP_TYPES, *SIGLIP_TYPES, "blip", "blip-2", "vilt")
#: SigLIP was trained on texts padded to this many tokens (its pooled token is the last one)
SIGLIP_TEXT_LENGTH = 64


def features(output: Any) -> torch.Tensor:
    """The projected embedding from `get_*_features`: a tensor (transformers 4) or the
    `pooler_output` of the returned model output (transformers 5)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"get_*_features returned {type(output).__name__} without pooler_output")
    return pooled


def read_model_type(folder: Path, spec: ModelSpec) -> str:
    path = folder / "config.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["model_type"])
    except FileNotFoundError as exc:
        raise ModelUnavailableError(
            f"{spec}: {folder} has no config.json", hint="give a transformers model folder"
        ) from exc
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as exc:
        raise UsageError(f"{spec}: {path} is not a transformers config with a model_type") from exc


class HFImageInputs:
    """PIL image -> every tensor the processor makes for one image (SigLIP 2's NaFlex
    patches come with `pixel_attention_mask` and `spatial_shapes`); picklable."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, image: Any) -> dict[str, torch.Tensor]:
        inputs = self.image_processor(images=image.convert("RGB"), return_tensors="pt")
        return {key: value[0] for key, value in inputs.items()}


class HFDualEncoder(EmbeddingModel):
    """CLIP or SigLIP from transformers: projected image and text features."""

    family = "hf"

    def __init__(self, spec: ModelSpec, device: str, folder: Path, model_type: str) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        super().__init__(spec, device)
        self.folder = folder
        self.model_type = model_type
        self.model = AutoModel.from_pretrained(folder).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.image_processor = AutoImageProcessor.from_pretrained(folder)
        max_positions = int(self.model.config.text_config.max_position_embeddings)
        name = type(self.model).__name__
        if model_type in SIGLIP_TYPES:
            self.text_length = min(SIGLIP_TEXT_LENGTH, max_positions)
            self.padding: str | bool = "max_length"
            self.embedding_image = f"{name}.get_image_features (attention-pooled head output)"
            self.embedding_text = (
                f"{name}.get_text_features (head of the last token, texts padded to "
                f"max_length={self.text_length})"
            )
        else:
            self.text_length = max_positions
            self.padding = True
            self.embedding_image = f"{name}.get_image_features (visual_projection of pooled CLS)"
            self.embedding_text = f"{name}.get_text_features (text_projection of the EOS token)"

    def image_preprocess(self) -> HFImagePreprocess | HFImageInputs:
        if self.model_type == "siglip2":
            return HFImageInputs(self.image_processor)
        return HFImagePreprocess(self.image_processor)

    def encode_images(self, batch: Any) -> torch.Tensor:
        inputs = dict(batch) if isinstance(batch, dict) else {"pixel_values": batch}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return features(self.model.get_image_features(**inputs)).float()

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.text_length,
            return_tensors="pt",
        )
        keep = ("input_ids", "attention_mask") if self.model_type != "siglip" else ("input_ids",)
        return {k: v.to(self.device) for k, v in tokens.items() if k in keep}

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return features(self.model.get_text_features(**self.tokenize(texts))).float()

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, type(self.model).__name__),
            "preprocessing": {
                "image": image_processing_record(self.image_processor),
                "text": {
                    "tokenizer": type(self.tokenizer).__name__,
                    "padding": self.padding if self.padding == "max_length" else "longest",
                    "max_length": self.text_length,
                    "truncation": True,
                },
            },
            **logit_scale_attrs(self.model),
        }


def load(spec: ModelSpec, device: str, **options: object) -> EmbeddingModel:
    folder = resolve_pretrained(spec.id, what=f"model {spec}", revision=spec.tag)
    model_type = read_model_type(folder, spec)
    if model_type in DELEGATES:
        module, func = DELEGATES[model_type]
        return getattr(importlib.import_module(module), func)(spec, folder, device, **options)
    if model_type in CLIP_TYPES + SIGLIP_TYPES:
        check_options(spec, options, {})
        return HFDualEncoder(spec, device, folder, model_type)
    hint = f"hf: supports model types {', '.join(SUPPORTED)}"
    if model_type.startswith("llava"):
        hint = f"use llava:{spec.id} for LLaVA"
    raise UsageError(
        f"{spec} is a {model_type!r} model, which hf: does not embed",
        hint=f"{hint}; image-only encoders use vision:, sentence encoders st:",
    )
