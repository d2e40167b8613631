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
from mgap.engine.models.base import EmbeddingModel, LayerStates, TowerLayers
from mgap.engine.models.checkpoints import logit_scale_attrs
from mgap.engine.models.hf_parts import (
    HFImagePreprocess,
    check_options,
    check_request,
    gather_layers,
    hidden_states_of,
    image_processing_record,
    masked_mean,
    weights_record,
)
from mgap.engine.models.hub import resolve_pretrained
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    Pool = Callable[[torch.Tensor], torch.Tensor]

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
#: side -> (pooling, lens) of `--layers` (docs/depth.md); layer k = hidden_states[k]
CLIP_LAYERS = {
    "image": (
        "class token hidden_states[k][:, 0] of vision_model (layer 0: the embeddings after "
        "pre_layrnorm)",
        "vision_model.post_layernorm then visual_projection",
    ),
    "text": (
        "EOS token of hidden_states[k] of text_model (the first eos_token_id position, as "
        "CLIP pools; layer 0: token plus position embeddings)",
        "text_model.final_layer_norm then text_projection",
    ),
}
SIGLIP_LAYERS = {
    "image": (
        "mean over the patch tokens of hidden_states[k] of vision_model (layer 0: patch plus "
        "position embeddings)",
        "vision_model.post_layernorm then vision_model.head (attention pooling over the "
        "layer's full token sequence; no further projection)",
    ),
    "text": (
        "last token hidden_states[k][:, -1] of text_model, as SigLIP pools (texts padded to "
        "max_length={length})",
        "text_model.final_layer_norm then text_model.head",
    ),
}


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

    def _images(self, batch: Any, hidden: bool) -> tuple[torch.Tensor, Any, dict[str, Any]]:
        """The embedding, the model output (with hidden states when `hidden`) and the inputs."""
        inputs = dict(batch) if isinstance(batch, dict) else {"pixel_values": batch}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        output = self.model.get_image_features(**inputs, output_hidden_states=hidden)
        return features(output).float(), output, inputs

    def encode_images(self, batch: Any) -> torch.Tensor:
        return self._images(batch, hidden=False)[0]

    def encode_images_layers(
        self, batch: Any, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "image", layers, spaces, self.tower_layers("image"))
        embedding, output, inputs = self._images(batch, hidden=True)
        raw, lens = self._image_pools(inputs.get("pixel_attention_mask"))
        states = hidden_states_of(output, self.spec)
        return embedding, gather_layers(states, layers, spaces, raw, lens)

    def _image_pools(self, mask: torch.Tensor | None) -> tuple[Pool, Pool | None]:
        vision = self.model.vision_model
        if self.model_type in CLIP_TYPES:
            return (
                lambda h: h[:, 0],
                lambda h: self.model.visual_projection(vision.post_layernorm(h[:, 0])),
            )
        head_args = () if mask is None else (mask,)

        def mean(h: torch.Tensor) -> torch.Tensor:
            return h.mean(dim=1) if mask is None else masked_mean(h, mask)

        if not getattr(vision, "use_head", False):
            return mean, None
        return mean, lambda h: vision.head(vision.post_layernorm(h), *head_args)

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

    def _texts(self, texts: Sequence[str], hidden: bool) -> tuple[torch.Tensor, Any, Any]:
        tokens = self.tokenize(texts)
        output = self.model.get_text_features(**tokens, output_hidden_states=hidden)
        return features(output).float(), output, tokens["input_ids"]

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._texts(texts, hidden=False)[0]

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "text", layers, spaces, self.tower_layers("text"))
        embedding, output, input_ids = self._texts(texts, hidden=True)
        states = hidden_states_of(output, self.spec)
        raw, lens = self._text_pools(input_ids)
        return embedding, gather_layers(states, layers, spaces, raw, lens)

    def _text_pools(self, input_ids: torch.Tensor) -> tuple[Pool, Pool]:
        import torch

        text = self.model.text_model
        if self.model_type in SIGLIP_TYPES:
            return lambda h: h[:, -1], lambda h: text.head(text.final_layer_norm(h[:, -1]))
        # the EOS position exactly as CLIPTextTransformer finds it (legacy configs: argmax id)
        ids = input_ids.to(torch.int)
        eos = (
            ids.argmax(-1)
            if text.eos_token_id == 2
            else (ids == text.eos_token_id).int().argmax(-1)
        )
        rows = torch.arange(ids.shape[0], device=ids.device)
        projection = self.model.text_projection
        return (
            lambda h: h[rows, eos],
            lambda h: projection(text.final_layer_norm(h[rows, eos])),
        )

    def tower_layers(self, side: str) -> TowerLayers:
        config = self.model.config
        tower = config.vision_config if side == "image" else config.text_config
        count = int(tower.num_hidden_layers) + 1
        if self.model_type in CLIP_TYPES:
            return TowerLayers(count, *CLIP_LAYERS[side])
        pooling, lens = SIGLIP_LAYERS[side]
        if side == "image" and self.model_type == "siglip2":
            pooling += " (padding patches excluded by pixel_attention_mask)"
        if side == "text":
            pooling = pooling.format(length=self.text_length)
        has_head = side == "text" or getattr(self.model.vision_model, "use_head", False)
        return TowerLayers(count, pooling, lens if has_head else "")

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
