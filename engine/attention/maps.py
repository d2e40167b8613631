"""Vision-tower attention maps: which patches the summary token reads, per family.

A map is the attention row of one query token over the image's patch tokens, averaged over
heads, at one layer (the last by default), restricted to the patch tokens and renormalised
to sum 1 (the query's attention to itself, and ViLT's attention to text tokens, are left
out). The query is:

- CLIP (open_clip and HF), BLIP, BLIP-2: the [CLS] token;
- SigLIP (no [CLS]): at the last layer, the probe of the attention-pooling head, which reads
  the last layer's states and makes the image embedding; at other layers, the mean of the
  attention rows of all patch queries;
- ViLT: the image [CLS] token, in a pass with an empty text, over the image's real patches.

The patch grid is always read from the model: the config's (or open_clip's) grid for
fixed-size towers, checked against the token count the model really produced, and for ViLT
each image's own grid from its pixel mask and `config.patch_size`, each token placed by the
position index ViLT itself assigns it. A count that does not fit the grid is an error, never
a silently reshaped map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mgap.core.errors import MgapError, UsageError

if TYPE_CHECKING:
    import torch

    from mgap.engine.models.base import EmbeddingModel

CLS_QUERY = "[CLS] token"
PROBE_QUERY = "attention-pooling head probe (reads the last layer)"
MEAN_QUERY = "mean over patch queries (SigLIP has no [CLS])"
VILT_QUERY = "image [CLS] token, empty text"


@dataclass(frozen=True)
class Maps:
    """Head-averaged maps of one batch: `maps[i]` is (rows, cols) and sums to 1."""

    maps: list[np.ndarray]
    query: str
    layer: int  # the resolved layer index, 0-based
    n_layers: int


def _layer_index(layer: int, n_layers: int, spec: object) -> int:
    index = layer + n_layers if layer < 0 else layer
    if not 0 <= index < n_layers:
        raise UsageError(
            f"--layer {layer} is out of range for {spec}, which has {n_layers} layers",
            hint=f"give 0..{n_layers - 1}, or -1 for the last",
        )
    return index


def _as_grid(row: torch.Tensor, grid: tuple[int, int], spec: object) -> np.ndarray:
    """A patch-attention row (n_patches,) -> (rows, cols), renormalised; the count must fit."""
    values = row.detach().double().cpu().numpy()
    if values.size != grid[0] * grid[1]:
        raise MgapError(
            f"{spec}: the model produced {values.size} patch tokens, but its grid is "
            f"{grid[0]}×{grid[1]} = {grid[0] * grid[1]}; refusing to reshape the map"
        )
    return (values / values.sum()).reshape(grid)


def _config_grid(vision_config: Any) -> tuple[int, int]:
    size, patch = vision_config.image_size, vision_config.patch_size
    size = size if isinstance(size, list | tuple) else (size, size)
    patch = patch if isinstance(patch, list | tuple) else (patch, patch)
    return int(size[0]) // int(patch[0]), int(size[1]) // int(patch[1])


def _mha_weights(mha: Any, query: Any, key: Any, value: Any, mask: Any = None) -> torch.Tensor:
    """Head-averaged weights (B, L, S) of an nn.MultiheadAttention on the given inputs."""
    return mha(query, key, value, need_weights=True, average_attn_weights=True, attn_mask=mask)[1]


# ---- open_clip -----------------------------------------------------------------------
def _open_clip(adapter: Any, batch: torch.Tensor, layer: int) -> Maps:
    import torch
    from open_clip.transformer import VisionTransformer

    visual = adapter.model.visual
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise UsageError(
            f"{adapter.spec}: attention maps need a ViT image tower read at [CLS]; this one is "
            f"{type(visual).__name__}",
            hint="use a ViT-* open_clip architecture",
        )
    blocks = visual.transformer.resblocks
    index = _layer_index(layer, len(blocks), adapter.spec)
    attn = blocks[index].attn
    if not isinstance(attn, torch.nn.MultiheadAttention):
        raise UsageError(f"{adapter.spec}: block attention is {type(attn).__name__}, not MHA")
    seen: dict[str, Any] = {}

    def grab(module: Any, args: tuple, kwargs: dict) -> None:
        seen["args"], seen["mask"] = args, kwargs.get("attn_mask")

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        adapter.model.encode_image(batch.to(adapter.device))
    finally:
        handle.remove()
    query, key, value = seen["args"][:3]  # ResidualAttentionBlock passes all three
    weights = _mha_weights(attn, query, key, value, seen["mask"])  # always (B, L, S)
    grid = tuple(int(g) for g in visual.grid_size)
    maps = [_as_grid(w[0, 1:], grid, adapter.spec) for w in weights]
    return Maps(maps, CLS_QUERY, index, len(blocks))


# ---- transformers towers with output_attentions ----------------------------------------
def _eager(model: Any) -> None:
    """Attention weights exist only on the eager path (SDPA never forms them)."""
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")


def _vision_attentions(adapter: Any, batch: Any) -> tuple[Any, Any]:
    model = adapter.model
    _eager(model)
    pixels = batch["pixel_values"] if isinstance(batch, dict) else batch
    pixels = pixels.to(adapter.device, next(model.parameters()).dtype)
    out = model.vision_model(pixel_values=pixels, output_attentions=True)
    return out, model.config.vision_config


def _cls_tower(adapter: Any, batch: Any, layer: int) -> Maps:
    out, config = _vision_attentions(adapter, batch)
    index = _layer_index(layer, len(out.attentions), adapter.spec)
    weights = out.attentions[index].mean(dim=1)  # (B, 1 + N, 1 + N)
    grid = _config_grid(config)
    maps = [_as_grid(w[0, 1:], grid, adapter.spec) for w in weights]
    return Maps(maps, CLS_QUERY, index, len(out.attentions))


def _siglip(adapter: Any, batch: Any, layer: int) -> Maps:
    if adapter.model_type != "siglip":
        raise UsageError(
            f"{adapter.spec}: attention maps of {adapter.model_type} (variable patch layouts) "
            "are not drawn",
            hint="use a fixed-size SigLIP or CLIP checkpoint",
        )
    out, config = _vision_attentions(adapter, batch)
    n_layers = len(out.attentions)
    index = _layer_index(layer, n_layers, adapter.spec)
    grid = _config_grid(config)
    head = getattr(adapter.model.vision_model, "head", None)
    if index == n_layers - 1 and head is not None:
        states = out.last_hidden_state
        probe = head.probe.expand(states.shape[0], -1, -1)
        weights = _mha_weights(head.attention, probe, states, states)[:, 0]  # (B, N)
        query = PROBE_QUERY
    else:
        weights = out.attentions[index].mean(dim=1).mean(dim=1)  # heads, then queries
        query = MEAN_QUERY
    maps = [_as_grid(w, grid, adapter.spec) for w in weights]
    return Maps(maps, query, index, n_layers)


# ---- ViLT ------------------------------------------------------------------------------
def _vilt(adapter: Any, batch: dict[str, torch.Tensor], layer: int) -> Maps:
    _eager(adapter.model)
    visual = adapter.visual_tokens(batch)
    tokens = adapter.empty_text(visual.embeds.shape[0])
    out = adapter.forward(tokens, visual, output_attentions=True)
    index = _layer_index(layer, len(out.attentions), adapter.spec)
    n_text = tokens["input_ids"].shape[1]
    weights = out.attentions[index].mean(dim=1)[:, n_text]  # image [CLS] row, (B, T + 1 + P)
    patch = adapter.patch_size
    masks = batch["pixel_mask"]
    maps = []
    for i in range(weights.shape[0]):
        rows = int(masks[i, :, 0].sum()) // patch
        cols = int(masks[i, 0, :].sum()) // patch
        real = visual.mask[i, 1:].bool()
        position = visual.patch_index[i][real].cpu().numpy()
        values = weights[i, n_text + 1 :][real]
        if position.shape[0] != rows * cols:
            raise MgapError(
                f"{adapter.spec}: image {i} has {position.shape[0]} real patch tokens but its "
                f"pixel mask makes a {rows}×{cols} grid of {patch}px patches"
            )
        grid = np.zeros((rows, cols))
        grid[position[:, 0], position[:, 1]] = values.detach().double().cpu().numpy()
        maps.append(grid / grid.sum())
    return Maps(maps, VILT_QUERY, index, len(out.attentions))


def attention_maps(adapter: EmbeddingModel, batch: Any, layer: int = -1) -> Maps:
    """Head-averaged patch maps for a collated batch of `adapter.image_preprocess()` outputs."""
    import torch

    from mgap.engine.models.blip import BlipAdapter
    from mgap.engine.models.blip2 import Blip2Adapter
    from mgap.engine.models.hf import CLIP_TYPES, HFDualEncoder
    from mgap.engine.models.openclip import OpenClipModel
    from mgap.engine.models.vilt import ViltAdapter

    with torch.inference_mode():
        if isinstance(adapter, OpenClipModel):
            return _open_clip(adapter, batch, layer)
        if isinstance(adapter, BlipAdapter | Blip2Adapter):
            return _cls_tower(adapter, batch, layer)
        if isinstance(adapter, HFDualEncoder):
            if adapter.model_type in CLIP_TYPES:
                return _cls_tower(adapter, batch, layer)
            return _siglip(adapter, batch, layer)
        if isinstance(adapter, ViltAdapter):
            return _vilt(adapter, batch, layer)
    raise UsageError(
        f"{adapter.spec}: attention maps are drawn for open_clip ViTs, HF CLIP, SigLIP, BLIP, "
        f"BLIP-2 and ViLT, not for {adapter.family} models",
        hint="extract the store with one of those models",
    )


def grid_coverage(adapter: EmbeddingModel) -> str:
    """Which part of the image the grid covers: "center" (a centre square, for models that
    resize the short side and centre-crop) or "full" (squashed or aspect-kept resize)."""
    processor = getattr(adapter, "image_processor", None)
    if processor is not None:
        return "center" if getattr(processor, "do_center_crop", False) else "full"
    steps = getattr(adapter.image_preprocess(), "transforms", [])
    return "center" if any(type(step).__name__ == "CenterCrop" for step in steps) else "full"
