"""MERU's model layout, rebuilt from its published description so its checkpoints load.

MERU ("Hyperbolic Image-Text Representations", Desai et al., ICML 2023) and its CLIP
baseline share the towers: a timm ViT (`visual`, [CLS] pooling, LayerNorm eps 1e-5) and a
CLIP-style causal text transformer (`textual`), each followed by a bias-free linear
projection (`visual_proj`, `textual_proj`). Pixels enter in [0, 1] and are normalised
inside the model with the `pixel_mean` / `pixel_std` buffers. MERU adds three learned
log-scalars: `curv` (the hyperboloid has curvature -exp(curv)), `visual_alpha` and
`textual_alpha` (features are scaled by exp(alpha) before the exponential map at the
origin). The parameter names below are the checkpoint's key names; they must not change.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

#: MERU's ViT sizes: (timm name, width, depth, heads). Its ViT-S is MoCo-v3's (12 heads).
VITS = {
    "vit_s": ("vit_small_patch16_224", 384, 12, 12),
    "vit_b": ("vit_base_patch16_224", 768, 12, 12),
    "vit_l": ("vit_large_patch16_224", 1024, 24, 16),
}
KINDS = ("meru", "clip")
#: sinh overflows float32 past this; MERU clamps the exp map's argument to it
MAX_SINH_ARG = math.asinh(2.0**15)


@dataclass(frozen=True)
class MeruConfig:
    """Everything needed to rebuild one checkpoint's modules (MERU's training configs)."""

    kind: str = "meru"
    vit: str = "vit_large_patch16_224"
    vit_width: int = 1024
    vit_depth: int = 24
    vit_heads: int = 16
    image_size: int = 224
    patch_size: int = 16
    text_layers: int = 12
    text_width: int = 512
    text_heads: int = 8
    vocab_size: int = 49408
    context_length: int = 77
    embed_dim: int = 512

    @classmethod
    def for_arch(cls, arch: str, kind: str = "meru") -> MeruConfig:
        name, width, depth, heads = VITS[arch]
        return cls(kind=kind, vit=name, vit_width=width, vit_depth=depth, vit_heads=heads)

    def updated(self, **fields: object) -> MeruConfig:
        return replace(self, **fields)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Block(nn.Module):
    """Pre-LN causal transformer block with CLIP's parameter names."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, 4 * width)),
                    ("gelu", nn.GELU()),
                    ("c_proj", nn.Linear(4 * width, width)),
                ]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class TextTower(nn.Module):
    """Token + learned position embeddings, causal blocks, final LayerNorm: (B, L, width)."""

    def __init__(self, cfg: MeruConfig) -> None:
        super().__init__()
        self.width = cfg.text_width
        self.context_length = cfg.context_length
        self.token_embed = nn.Embedding(cfg.vocab_size, cfg.text_width)
        self.posit_embed = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_width))
        self.resblocks = nn.ModuleList(
            _Block(cfg.text_width, cfg.text_heads) for _ in range(cfg.text_layers)
        )
        self.ln_final = nn.LayerNorm(cfg.text_width)
        # True above the diagonal: a token never attends to later ones (a checkpoint buffer)
        full = torch.ones(cfg.context_length, cfg.context_length, dtype=torch.bool)
        self.register_buffer("attn_mask", torch.triu(full, diagonal=1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[-1]
        x = self.token_embed(tokens) + self.posit_embed[:length]
        mask = self.attn_mask[:length, :length]
        for block in self.resblocks:
            x = block(x, mask)
        return self.ln_final(x)


def image_tower(cfg: MeruConfig) -> nn.Module:
    """timm ViT without a head, pooled at [CLS], LayerNorm with torch's eps as MERU uses."""
    import timm

    return timm.create_model(
        cfg.vit,
        pretrained=False,
        num_classes=0,
        global_pool="token",
        class_token=True,
        norm_layer=nn.LayerNorm,
        embed_dim=cfg.vit_width,
        depth=cfg.vit_depth,
        num_heads=cfg.vit_heads,
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
    )


def exp_map0(v: torch.Tensor, curv: torch.Tensor) -> torch.Tensor:
    """Space part of exp_O(v) on the hyperboloid of curvature -curv: sinh(√c‖v‖)·v/(√c‖v‖).

    The argument of sinh is clamped at asinh(2^15) as MERU does, so float32 never overflows.
    """
    r = curv.sqrt() * v.norm(dim=-1, keepdim=True)
    safe = r.clamp(min=torch.finfo(v.dtype).tiny)
    return torch.where(r > 0, torch.sinh(r.clamp(max=MAX_SINH_ARG)) / safe, 1.0) * v


class MeruNet(nn.Module):
    """MERU (kind "meru") or its Euclidean CLIP baseline (kind "clip"), checkpoint layout."""

    def __init__(self, cfg: MeruConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = image_tower(cfg)
        self.textual = TextTower(cfg)
        self.visual_proj = nn.Linear(cfg.vit_width, cfg.embed_dim, bias=False)
        self.textual_proj = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.register_buffer("pixel_mean", torch.tensor((0.485, 0.456, 0.406)).view(-1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor((0.229, 0.224, 0.225)).view(-1, 1, 1))
        if cfg.kind == "meru":
            self.curv = nn.Parameter(torch.tensor(0.0))
            self.visual_alpha = nn.Parameter(torch.tensor(cfg.embed_dim**-0.5).log())
            self.textual_alpha = nn.Parameter(torch.tensor(cfg.embed_dim**-0.5).log())

    @property
    def hyperbolic(self) -> bool:
        return self.cfg.kind == "meru"

    def curvature(self) -> float:
        """c > 0 of the space of curvature -c (exp of the stored log)."""
        return float(self.curv.exp()) if self.hyperbolic else 0.0

    def _lift(self, feats: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        feats = feats.float()
        if alpha is None:
            return nn.functional.normalize(feats, dim=-1)
        return exp_map0(feats * alpha.exp(), self.curv.exp())

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [0, 1] -> space components (MERU) or unit vectors (CLIP)."""
        x = (pixels - self.pixel_mean) / self.pixel_std
        feats = self.visual_proj(self.visual(x))
        return self._lift(feats, self.visual_alpha if self.hyperbolic else None)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Right-padded token ids -> embeddings taken at the EOT token (the largest id)."""
        eot = tokens.argmax(dim=-1)
        states = self.textual(tokens[:, : int(eot.max()) + 1])
        feats = self.textual_proj(states[torch.arange(tokens.shape[0]), eot])
        return self._lift(feats, self.textual_alpha if self.hyperbolic else None)
