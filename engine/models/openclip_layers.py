"""Per-layer pooled states of open_clip towers, from the embedding's own forward pass.

The blocks are run one by one, exactly as open_clip's `Transformer.forward` runs them, so
the embedding that comes out at the end is `encode_image`/`encode_text`'s, and every
requested layer is pooled on the way (docs/design.md §8):

- image: layer 0 is the input to block 1 (after `ln_pre`), layer k the output of block k;
  a layer's vector is the class token (or the mean of the patch tokens when the model's
  pool type is 'avg'); `lens` is the tower's own head on that layer (`ln_post`, then `proj`).
- text: layer 0 is the token plus positional embedding, layer k the output of block k; a
  layer's vector is the EOT token's state (the model's text pool); `lens` is `ln_final`,
  then `text_projection`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mgap.engine.models.base import LayerStates, TowerLayers

if TYPE_CHECKING:
    import torch

IMAGE_POOLING = {
    "tok": "class token of each residual block's output (layer 0: the input to block 1, "
    "after ln_pre)",
    "avg": "mean of the patch tokens of each residual block's output (the model's pool type "
    "'avg'; layer 0: the input to block 1, after ln_pre)",
}
IMAGE_LENS = "ln_post then proj"
IMAGE_LENS_TOKENS = "ln_post on every token, then the mean of the patch tokens, then proj"
TEXT_POOLING = {
    "argmax": "EOT token (argmax of the token ids) of each residual block's output (layer 0: "
    "token plus positional embedding)",
    "first": "first token of each residual block's output (layer 0: token plus positional "
    "embedding)",
    "last": "last token of each residual block's output (layer 0: token plus positional embedding)",
}
TEXT_LENS = "ln_final then text_projection"


def image_tower(model: Any) -> TowerLayers | None:
    """The image tower's layers, or None when its pooling has no per-layer definition."""
    import open_clip

    visual = model.visual
    if not isinstance(visual, open_clip.transformer.VisionTransformer):
        return None
    if visual.attn_pool is not None or visual.pool_type not in IMAGE_POOLING:
        return None
    per_token = visual.pool_type == "avg" and not visual.final_ln_after_pool
    lens = IMAGE_LENS_TOKENS if per_token else IMAGE_LENS
    if visual.proj is None:
        lens = lens.removesuffix(", then proj").removesuffix(" then proj")
    count = len(visual.transformer.resblocks) + 1
    return TowerLayers(count=count, pooling=IMAGE_POOLING[visual.pool_type], lens=lens)


def text_tower(model: Any) -> TowerLayers | None:
    """The text tower's layers: open_clip's own CLIP text transformer only."""
    import open_clip

    if type(model) is not open_clip.CLIP or model.text_pool_type not in TEXT_POOLING:
        return None
    count = len(model.transformer.resblocks) + 1
    return TowerLayers(count=count, pooling=TEXT_POOLING[model.text_pool_type], lens=TEXT_LENS)


def _run_blocks(
    transformer: Any,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None,
    layers: Sequence[int],
    pool: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(last block's output, the tokens of each of `layers`) in batch-first layout."""
    wanted = set(layers)
    kept = [x] if 0 in wanted else []
    if not transformer.batch_first:
        x = x.transpose(0, 1).contiguous()
    for k, block in enumerate(transformer.resblocks, start=1):
        x = block(x, attn_mask=attn_mask)
        if k in wanted:
            kept.append(x if transformer.batch_first else x.transpose(0, 1))
    if not transformer.batch_first:
        x = x.transpose(0, 1)
    return x, [pool(h) for h in kept]


def _states(
    pooled: list[torch.Tensor],
    tokens: list[torch.Tensor],
    head: Callable[[torch.Tensor], torch.Tensor],
    spaces: Sequence[str],
) -> LayerStates:
    import torch

    raw = torch.stack(pooled, dim=1).float() if "raw" in spaces else None
    lens = torch.stack([head(t) for t in tokens], dim=1).float() if "lens" in spaces else None
    return LayerStates(raw=raw, lens=lens)


def image_layers(
    model: Any, images: torch.Tensor, layers: Sequence[int], spaces: Sequence[str]
) -> tuple[torch.Tensor, LayerStates]:
    """`encode_image(images)` and the pooled states of `layers` from the same pass."""
    visual = model.visual

    def head(tokens: torch.Tensor) -> torch.Tensor:
        pooled, _ = visual._pool(tokens)
        return pooled @ visual.proj if visual.proj is not None else pooled

    # the class token alone pools and heads a 'tok' layer: the other tokens are not kept
    keep = (lambda h: h[:, :1]) if visual.pool_type == "tok" else (lambda h: h)
    x = visual._embeds(images)
    x, kept = _run_blocks(visual.transformer, x, None, layers, keep)
    pooled = [visual._global_pool(h)[0] for h in kept]
    return head(x).float(), _states(pooled, kept, head, spaces)


def text_layers(
    model: Any, tokens: torch.Tensor, layers: Sequence[int], spaces: Sequence[str], trim: bool
) -> tuple[torch.Tensor, LayerStates]:
    """`encode_text(tokens)` and the pooled states of `layers` from the same pass; with
    `trim`, the tokens are cut after the batch's last EOT as `encode_text_trimmed` does."""
    import torch
    from open_clip.transformer import text_global_pool

    length = int(tokens.argmax(dim=-1).max()) + 1 if trim else tokens.shape[1]
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    eos = getattr(model, "text_eos_id", None)

    def pool(h: torch.Tensor) -> torch.Tensor:
        return text_global_pool(h, tokens, model.text_pool_type, eos_token_id=eos)

    def head(pooled: torch.Tensor) -> torch.Tensor:
        y = model.ln_final(pooled)
        proj = model.text_projection
        if proj is None:
            return y
        return proj(y) if isinstance(proj, torch.nn.Linear) else y @ proj

    mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
    x, pooled = _run_blocks(model.transformer, x, mask, layers, pool)
    return head(pool(x)).float(), _states(pooled, pooled, head, spaces)
