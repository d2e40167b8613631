"""A tiny random-init MERU checkpoint written key by key in MERU's own state-dict layout.

The keys follow facebookresearch/meru (`meru/models.py`, `encoders/text_encoders.py`, a timm
ViT under `visual.`): they are listed here by hand, not taken from mgap's modules, so a
drift in mgap's layout fails the tests. ViT-S-like shapes (width 384, 12 heads, 16-pixel
patches at 224) with two blocks per tower keep it fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

VIT_WIDTH, VIT_HEADS, VIT_DEPTH = 384, 12, 2
TEXT_WIDTH, TEXT_HEADS, TEXT_LAYERS = 64, 2, 2
VOCAB, CONTEXT, EMBED = 49408, 77, 512
IMAGE, PATCH = 224, 16
CURVATURE = 0.7


def tiny_config(kind: str = "meru") -> dict:
    """The JSON config mgap reads beside the checkpoint."""
    return {
        "kind": kind,
        "vit": "vit_small_patch16_224",
        "vit_width": VIT_WIDTH,
        "vit_depth": VIT_DEPTH,
        "vit_heads": VIT_HEADS,
        "text_layers": TEXT_LAYERS,
        "text_width": TEXT_WIDTH,
        "text_heads": TEXT_HEADS,
    }


def _visual(g: torch.Generator) -> dict[str, torch.Tensor]:
    w, n = VIT_WIDTH, (IMAGE // PATCH) ** 2

    def rnd(*shape: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    sd = {
        "cls_token": rnd(1, 1, w),
        "pos_embed": rnd(1, n + 1, w),
        "patch_embed.proj.weight": rnd(w, 3, PATCH, PATCH),
        "patch_embed.proj.bias": rnd(w),
        "norm.weight": 1 + rnd(w),
        "norm.bias": rnd(w),
    }
    for i in range(VIT_DEPTH):
        b = f"blocks.{i}."
        sd |= {
            b + "norm1.weight": 1 + rnd(w),
            b + "norm1.bias": rnd(w),
            b + "attn.qkv.weight": rnd(3 * w, w),
            b + "attn.qkv.bias": rnd(3 * w),
            b + "attn.proj.weight": rnd(w, w),
            b + "attn.proj.bias": rnd(w),
            b + "norm2.weight": 1 + rnd(w),
            b + "norm2.bias": rnd(w),
            b + "mlp.fc1.weight": rnd(4 * w, w),
            b + "mlp.fc1.bias": rnd(4 * w),
            b + "mlp.fc2.weight": rnd(w, 4 * w),
            b + "mlp.fc2.bias": rnd(w),
        }
    return {f"visual.{k}": v for k, v in sd.items()}


def _textual(g: torch.Generator) -> dict[str, torch.Tensor]:
    w = TEXT_WIDTH

    def rnd(*shape: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    sd = {
        "token_embed.weight": rnd(VOCAB, w),
        "posit_embed": rnd(CONTEXT, w, std=0.01),
        "ln_final.weight": 1 + rnd(w),
        "ln_final.bias": rnd(w),
        "attn_mask": torch.triu(torch.full((CONTEXT, CONTEXT), float("-inf")), 1).bool(),
    }
    for i in range(TEXT_LAYERS):
        b = f"resblocks.{i}."
        sd |= {
            b + "attn.in_proj_weight": rnd(3 * w, w, std=w**-0.5),
            b + "attn.in_proj_bias": rnd(3 * w),
            b + "attn.out_proj.weight": rnd(w, w, std=0.1),
            b + "attn.out_proj.bias": rnd(w),
            b + "ln_1.weight": 1 + rnd(w),
            b + "ln_1.bias": rnd(w),
            b + "mlp.c_fc.weight": rnd(4 * w, w, std=(2 * w) ** -0.5),
            b + "mlp.c_fc.bias": rnd(4 * w),
            b + "mlp.c_proj.weight": rnd(w, 4 * w, std=0.1),
            b + "mlp.c_proj.bias": rnd(w),
            b + "ln_2.weight": 1 + rnd(w),
            b + "ln_2.bias": rnd(w),
        }
    return {f"textual.{k}": v for k, v in sd.items()}


def tiny_state_dict(kind: str = "meru", seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = _visual(g) | _textual(g)
    sd["visual_proj.weight"] = torch.randn(EMBED, VIT_WIDTH, generator=g) * VIT_WIDTH**-0.5
    sd["textual_proj.weight"] = torch.randn(EMBED, TEXT_WIDTH, generator=g) * TEXT_WIDTH**-0.5
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    sd["pixel_mean"] = torch.tensor((0.485, 0.456, 0.406)).view(-1, 1, 1)
    sd["pixel_std"] = torch.tensor((0.229, 0.224, 0.225)).view(-1, 1, 1)
    if kind == "meru":
        sd["curv"] = torch.tensor(math.log(CURVATURE))
        sd["visual_alpha"] = torch.tensor(EMBED**-0.5).log()
        sd["textual_alpha"] = torch.tensor(EMBED**-0.5 * 1.5).log()
    return sd


def write_tiny_meru(
    folder: Path,
    kind: str = "meru",
    *,
    name: str = "tiny_meru.pth",
    config: bool = True,
    wrap: str = "model",
) -> Path:
    """Save the checkpoint (`wrap`: "model" = MERU's {"model": ..., "iteration": ...},
    "flat" = the bare state dict, "module" = DDP `module.` prefixes) and its config."""
    sd = tiny_state_dict(kind)
    if wrap == "module":
        sd = {f"module.{k}": v for k, v in sd.items()}
    payload = {"model": sd, "iteration": 0} if wrap in ("model", "module") else sd
    path = Path(folder) / name
    torch.save(payload, path)
    if config:
        path.with_suffix(".json").write_text(json.dumps(tiny_config(kind)), encoding="utf-8")
    return path
