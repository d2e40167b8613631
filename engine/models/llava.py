"""LLaVA (`LlavaForConditionalGeneration`, e.g. `llava-hf/llava-1.5-7b-hf`) in two views.

`view=before` (default), the spaces that meet at the LLM's input:
  image = mean over patches of `multi_modal_projector(vision_tower hidden state at
  vision_feature_layer)`, CLS dropped when vision_feature_select_strategy is "default"
  (LLaVA-1.5: layer -2, 576 patch tokens); text = mean of the LLM's input embeddings
  (`embed_tokens`) over the caption's tokens, padding and special tokens (BOS) excluded.
`view=after`, the LLM's final (normed) hidden states:
  image = mean over the image-token positions of the sequence BOS + image tokens; text =
  mean over the caption-token positions of BOS + caption. Positions come from the
  attention mask and the image-token ids, and position ids are rebuilt from the mask, so
  neither the tokenizer's padding side nor the batch changes an item's embedding.

The view is chosen by the `view` option or by the spec tag (`llava:REPO@after`); any other
tag is the hub revision. `load_in=4bit|8bit` quantises with bitsandbytes (CUDA only).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
from mgap.engine.models.base import EmbeddingModel, LayerStates, TowerLayers
from mgap.engine.models.hf_parts import (
    PRECISIONS,
    HFImagePreprocess,
    as_embedding,
    check_architecture,
    check_options,
    check_request,
    gather_layers,
    hidden_states_of,
    image_processing_record,
    int_option,
    masked_mean,
    refuse_random_heads,
    torch_dtype,
    weights_record,
)
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "LlavaForConditionalGeneration"
VIEWS = ("before", "after")
LOAD_IN = ("4bit", "8bit")
OPTIONS = {"view": VIEWS, "load_in": LOAD_IN, "precision": PRECISIONS, "max_length": None}
DEFAULT_MAX_LENGTH = 128
EMBEDDINGS = {
    "before": (
        "mean over patches of multi_modal_projector(vision layer {layer} tokens, {tokens}) "
        "(before the LLM)",
        "masked mean of the LLM input embeddings of the caption tokens, padding and special "
        "tokens excluded (before the LLM)",
    ),
    "after": (
        "mean of the LLM's final hidden states over the image-token positions of "
        "[BOS, image tokens] (after the LLM)",
        "masked mean of the LLM's final hidden states over the caption tokens of "
        "[BOS, caption], padding and special tokens excluded (after the LLM)",
    ),
}

#: side -> what one raw vector of layer k is (view=after; docs/depth.md). Layer 0 is the
#: LLM's input embeddings; the last is after the LLM's final norm, as transformers reports
#: hidden_states, so the last layer is the view=after embedding itself.
LAYER_POOLING = {
    "image": "masked mean over the image-token positions of the language model's "
    "hidden_states[k] for [BOS, image tokens] (layer 0: its input embeddings with the "
    "projected image features; last layer: after the final norm)",
    "text": "masked mean over the caption-token positions of the language model's "
    "hidden_states[k] for [BOS, caption], padding and special tokens excluded, position "
    "ids from the attention mask (layer 0: its input embeddings; last layer: after the "
    "final norm)",
}


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted over real tokens only, so left padding does not shift them."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)


class LlavaAdapter(EmbeddingModel):
    family = "llava"

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        *,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        folder: Path,
        view: str,
        max_length: int,
        load_in: str | None,
    ) -> None:
        super().__init__(spec, device)
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:  # LLaMA ships none; pads are masked out, any id will do
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        self.image_processor = image_processor
        self.folder = folder
        self.view = view
        self.max_length = max_length
        self.load_in = load_in
        config = model.config
        self.image_token_id = int(config.image_token_id)
        self.feature_layer = config.vision_feature_layer
        self.select_strategy = config.vision_feature_select_strategy
        self.patch_size = int(config.vision_config.patch_size)
        self.dtype = model.model.vision_tower.get_input_embeddings().weight.dtype
        tokens = "CLS dropped" if self.select_strategy == "default" else "CLS kept"
        image, text = EMBEDDINGS[view]
        self.embedding_image = image.format(layer=self.feature_layer, tokens=tokens)
        self.embedding_text = text

    def image_preprocess(self) -> HFImagePreprocess:
        return HFImagePreprocess(self.image_processor)

    # ---- images --------------------------------------------------------------------
    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, N, D): the projected vision tokens the LLM receives in place of `<image>`."""
        import torch

        features = self.model.model.get_image_features(
            pixel_values=pixels,
            vision_feature_layer=self.feature_layer,
            vision_feature_select_strategy=self.select_strategy,
        ).pooler_output
        return features if isinstance(features, torch.Tensor) else torch.stack(list(features))

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = batch.to(self.device, self.dtype)
        if self.view == "before":
            return as_embedding(self.image_tokens(pixels).mean(dim=1))
        return self._images_after(pixels, hidden=False)[0]

    def _images_after(self, pixels: torch.Tensor, hidden: bool) -> tuple[torch.Tensor, Any, Any]:
        """The embedding, the LLM output and the image-token mask of [BOS, image tokens]."""
        import torch

        height, width = pixels.shape[-2:]
        count = (height // self.patch_size) * (width // self.patch_size)
        count += 0 if self.select_strategy == "default" else 1
        prefix = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        row = torch.tensor(prefix + [self.image_token_id] * count, device=pixels.device)
        input_ids = row.expand(pixels.shape[0], -1)
        mask = torch.ones_like(input_ids)
        output = self.model.model(
            input_ids=input_ids,
            pixel_values=pixels,
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
            vision_feature_layer=self.feature_layer,
            vision_feature_select_strategy=self.select_strategy,
            use_cache=False,
            output_hidden_states=hidden,
        )
        keep = (input_ids == self.image_token_id) & mask.bool()
        return masked_mean(output.last_hidden_state, keep), output, keep

    def encode_images_layers(
        self, batch: torch.Tensor, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "image", layers, spaces, self.tower_layers("image"))
        pixels = batch.to(self.device, self.dtype)
        embedding, output, keep = self._images_after(pixels, hidden=True)
        states = hidden_states_of(output, self.spec)
        return embedding, gather_layers(
            states, layers, spaces, lambda h: masked_mean(h, keep), None
        )

    # ---- texts ---------------------------------------------------------------------
    def _captions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids, attention mask and the caption-token mask (padding and BOS excluded)."""
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        input_ids = tokens["input_ids"].to(self.device)
        mask = tokens["attention_mask"].to(self.device)
        keep = mask.bool() & ~tokens["special_tokens_mask"].to(self.device).bool()
        return input_ids, mask, keep

    def _texts_after(self, texts: Sequence[str], hidden: bool) -> tuple[torch.Tensor, Any, Any]:
        input_ids, mask, keep = self._captions(texts)
        output = self.model.model.language_model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
            use_cache=False,
            output_hidden_states=hidden,
        )
        return masked_mean(output.last_hidden_state, keep), output, keep

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        if self.view == "before":
            input_ids, _, keep = self._captions(texts)
            embed = self.model.model.language_model.get_input_embeddings()
            return masked_mean(embed(input_ids), keep)
        return self._texts_after(texts, hidden=False)[0]

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "text", layers, spaces, self.tower_layers("text"))
        embedding, output, keep = self._texts_after(texts, hidden=True)
        states = hidden_states_of(output, self.spec)
        return embedding, gather_layers(
            states, layers, spaces, lambda h: masked_mean(h, keep), None
        )

    # ---- per-layer states ----------------------------------------------------------
    def tower_layers(self, side: str) -> TowerLayers:
        """Both sides are the language model's layers, so they share one space at every depth."""
        if self.view == "before":
            raise UsageError(
                f"{self.spec} in view=before does not run the language model, whose layers "
                "--layers stores",
                hint=f"use llava:{self.spec.id}@after",
            )
        count = int(self.model.config.text_config.num_hidden_layers) + 1
        return TowerLayers(count, LAYER_POOLING[side], "")

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, ARCHITECTURE),
            "view": self.view,
            "vision_feature_layer": str(self.feature_layer),
            "vision_feature_select_strategy": self.select_strategy,
            "preprocessing": {
                "image": image_processing_record(self.image_processor),
                "text": {
                    "tokenizer": type(self.tokenizer).__name__,
                    "padding": "longest; positions and pooling from the attention mask",
                    "truncation": True,
                    "max_length": self.max_length,
                    "excluded": "padding and special tokens (BOS)",
                },
            },
            "precision": str(self.dtype).removeprefix("torch."),
            "load_in": self.load_in or "none",
        }


def _view_and_revision(spec: ModelSpec, options: dict[str, str]) -> tuple[str, str | None]:
    """`@before`/`@after` pick the view; any other tag is a hub revision."""
    tag_view = spec.tag if spec.tag in VIEWS else None
    view = options.get("view", tag_view or "before")
    if tag_view and view != tag_view:
        raise UsageError(
            f"{spec} asks for view {tag_view} in its tag but view={view} in its options",
            hint="give the view once",
        )
    return view, (None if tag_view else spec.tag)


def _quantization(spec: ModelSpec, load_in: str | None, device: str) -> Any:
    if load_in is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"load_in={load_in} for {spec} needs bitsandbytes, which is not installed",
            hint="pip install bitsandbytes, or leave out load_in",
        ) from exc
    if not device.startswith("cuda"):
        raise UsageError(
            f"load_in={load_in} for {spec} quantises on CUDA only, but the device is {device}",
            hint="use --device cuda, or leave out load_in",
        )
    import torch
    from transformers import BitsAndBytesConfig

    if load_in == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
    return BitsAndBytesConfig(load_in_8bit=True)


def load(spec: ModelSpec, device: str, **options: object) -> LlavaAdapter:
    """Load a LLaVA checkpoint (hub id or folder); options: view, load_in, precision, max_length."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    from mgap.engine.models.hub import resolve_pretrained

    opts = check_options(spec, options, OPTIONS)
    view, revision = _view_and_revision(spec, opts)
    quantization = _quantization(spec, opts.get("load_in"), device)
    folder = resolve_pretrained(spec.id, what=f"LLaVA model {spec}", revision=revision)
    config = AutoConfig.from_pretrained(folder)
    if getattr(config, "model_type", None) != "llava":
        raise UsageError(
            f"{spec} is a {getattr(config, 'model_type', 'unknown')} model, not LLaVA "
            "(LlavaForConditionalGeneration)",
            hint="llava: takes LLaVA-1.5-style checkpoints such as llava-hf/llava-1.5-7b-hf",
        )
    check_architecture(spec, config, ARCHITECTURE)
    from transformers import LlavaForConditionalGeneration

    dtype = torch_dtype(device, opts.get("precision"), gpu_default="bfloat16")
    placement = {"device_map": {"": device}} if quantization is not None else {}
    model, info = LlavaForConditionalGeneration.from_pretrained(
        folder,
        dtype=dtype,
        quantization_config=quantization,
        output_loading_info=True,
        **placement,
    )
    refuse_random_heads(
        spec,
        info["missing_keys"],
        ("model.vision_tower.", "model.multi_modal_projector.", "model.language_model."),
        what="vision tower, projector or language model weights",
        hint="check that the folder holds a complete LLaVA checkpoint",
    )
    if quantization is None:
        model = model.to(device)
    return LlavaAdapter(
        spec,
        device,
        model=model.eval(),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
        folder=Path(folder),
        view=view,
        max_length=int_option(spec, opts, "max_length", DEFAULT_MAX_LENGTH),
        load_in=opts.get("load_in"),
    )
