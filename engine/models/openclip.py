"""`open_clip:ARCH@TAG`, `open_clip:hf-hub:ORG/REPO` and `open_clip:FOLDER`: open_clip models.

Embeddings are `encode_image` / `encode_text` (unnormalised). `@random` builds the
architecture after `torch.manual_seed(0)`, so two runs give identical arrays. Pretrained
weights are looked up in the HF cache (or open_clip's URL cache) before open_clip is asked
for them, so a missing checkpoint fails in milliseconds instead of after ~50 s of retries.

Causal CLIP text towers (argmax-of-token-id pooling at the EOT token) run on token batches
trimmed to the batch's longest caption: with the causal mask the EOT state only sees the
tokens before it, so trimming the padding after it changes nothing but the cost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models import openclip_layers
from mgap.engine.models.base import EmbeddingModel, LayerStates, TowerLayers
from mgap.engine.models.checkpoints import logit_scale_attrs
from mgap.engine.models.hf_parts import check_options
from mgap.engine.models.hub import (
    cached_file,
    hub_offline,
    resolve_pretrained,
    unavailable,
    weights_provenance,
)
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

RANDOM_TAG = "random"
RANDOM_SEED = 0
HF_HUB = "hf-hub:"
#: preprocessing a pretrained tag sets (open_clip applies it for tags, not for files)
TAG_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
OPENAI_URL_CACHE = Path("~/.cache/clip")


def cached_tag_checkpoint(cfg: dict[str, Any]) -> Path | None:
    """The local checkpoint of a pretrained tag (HF cache, then open_clip's URL cache)."""
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        for name in _safe_first(filename or "open_clip_pytorch_model.bin"):
            found = cached_file(repo, name)
            if found is not None:
                return found
    url = cfg.get("url", "")
    if url:
        path = OPENAI_URL_CACHE.expanduser() / os.path.basename(url)
        if path.is_file():
            return path
    return None


def tag_source(cfg: dict[str, Any]) -> str:
    """Where a tag's weights come from: the hub repo, else the URL."""
    hub = cfg.get("hf_hub", "")
    return os.path.split(hub)[0] if hub else str(cfg.get("url", ""))


def _tag_checkpoint(arch: str, cfg: dict[str, Any], what: str) -> str:
    """A local checkpoint file for a pretrained tag; downloads only when the hub answers."""
    from open_clip.pretrained import download_pretrained

    found = cached_tag_checkpoint(cfg)
    if found is not None:
        return str(found)
    if hub_offline():
        raise unavailable(
            what,
            tag_source(cfg),
            local_hint=f"pass the checkpoint file as open_clip:{arch}@/path/to/weights.pt",
        )
    return download_pretrained(cfg)


def _safe_first(filename: str) -> list[str]:
    stem, ext = os.path.splitext(filename)
    if ext in (".bin", ".pth", ".pt"):
        safe = (
            "open_clip_model.safetensors"
            if filename == "open_clip_pytorch_model.bin"
            else stem + ".safetensors"
        )
        return [safe, filename]
    return [filename]


def _arch_name(arch: str) -> str:
    import open_clip

    name = arch.replace("/", "-")
    if name not in open_clip.list_models():
        raise UsageError(
            f"unknown open_clip architecture {arch!r}",
            hint="`mgap models --family open_clip` lists the architectures and their tags",
        )
    return name


def _build_from_folder(spec: ModelSpec, device: str) -> tuple[Any, Any, Any, dict[str, object]]:
    """An `hf-hub:` repo or a local folder holding an open_clip_config.json."""
    import open_clip

    repo = spec.id.removeprefix(HF_HUB)
    folder = resolve_pretrained(repo, what=f"model {spec}", revision=spec.tag)
    if not (folder / "open_clip_config.json").is_file():
        raise UsageError(
            f"{spec}: {folder} has no open_clip_config.json",
            hint="use hf: for transformers models",
        )
    name = f"local-dir:{folder}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, device=device)
    return model, preprocess, open_clip.get_tokenizer(name), weights_provenance(repo, folder)


def _tag_weights(
    spec: ModelSpec, arch: str, kwargs: dict[str, Any]
) -> tuple[str | None, dict[str, object]]:
    """(checkpoint file or None for a random init, weights provenance) of `spec`'s tag;
    a pretrained tag also sets its preprocessing options in `kwargs`."""
    import open_clip
    import torch

    tag = spec.tag
    if tag is None:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UsageError(
            f"{spec} names no weights",
            hint=f"add @{RANDOM_TAG} or a pretrained tag: {', '.join(tags) or 'none exist'}",
        )
    if tag == RANDOM_TAG:
        torch.manual_seed(RANDOM_SEED)
        return None, {"weights": f"random init (torch.manual_seed({RANDOM_SEED}))"}
    if Path(tag).expanduser().is_file():
        checkpoint = str(Path(tag).expanduser().resolve())
        return checkpoint, {"weights": checkpoint}
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UsageError(
            f"{arch} has no pretrained tag {tag!r}",
            hint=f"tags: {', '.join(tags) or 'none'}; or @{RANDOM_TAG}, or @/path/to/file.pt",
        )
    checkpoint = _tag_checkpoint(arch, cfg, f"model {spec}")
    kwargs.update({f"image_{k}": cfg[k] for k in TAG_PREPROCESS_KEYS if k in cfg})
    kwargs["force_quick_gelu"] = bool(cfg.get("quick_gelu", False))
    return checkpoint, {"weights": f"{arch}@{tag}", "weights_file": checkpoint}


def _build(spec: ModelSpec, device: str) -> tuple[Any, Any, Any, dict[str, object]]:
    """(model, image transform, tokenizer, weights provenance) for any open_clip spec."""
    import open_clip

    if spec.id.startswith(HF_HUB) or Path(spec.id).expanduser().is_dir():
        return _build_from_folder(spec, device)
    arch = _arch_name(spec.id)
    kwargs: dict[str, Any] = {"device": device}
    checkpoint, weights = _tag_weights(spec, arch, kwargs)
    # open_clip logs a root-logger warning for the random init we asked for
    logging.disable(logging.WARNING if checkpoint is None else logging.NOTSET)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=checkpoint, **kwargs
        )
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint file, named in one line
        if checkpoint is None:
            raise
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise ModelUnavailableError(
            f"{checkpoint} is not an open_clip checkpoint for {arch} ({detail})",
            hint="give a .pt/.bin/.safetensors state dict saved from this architecture",
        ) from None
    finally:
        logging.disable(logging.NOTSET)
    return model, preprocess, open_clip.get_tokenizer(arch), weights


def trims_text(model: Any) -> bool:
    """Trimming is exact only for open_clip's own causal text tower pooled at argmax(ids)."""
    import open_clip

    return (
        type(model) is open_clip.CLIP
        and getattr(model, "text_pool_type", "") == "argmax"
        and getattr(model, "attn_mask", None) is not None
    )


def encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """`CLIP.encode_text` on tokens cut after the batch's last EOT (argmax id), with the
    positional embedding and causal mask cut to the same length."""
    import torch

    eot = tokens.argmax(dim=-1)
    length = int(eot.max()) + 1
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :length]).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)[torch.arange(x.shape[0], device=x.device), eot]
    if model.text_projection is None:
        return x
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x @ model.text_projection


class OpenClipModel(EmbeddingModel):
    family = "open_clip"
    embedding_image = "encode_image (unnormalised)"
    embedding_text = "encode_text (unnormalised)"

    def __init__(self, spec: ModelSpec, device: str) -> None:
        super().__init__(spec, device)
        self.model, self.preprocess, self.tokenizer, self.weights = _build(spec, device)
        self.model.eval()
        self.trim = trims_text(self.model)
        if self.trim:
            self.embedding_text = (
                "encode_text (unnormalised; EOT token state, causal tower run on tokens "
                "trimmed to the batch's longest caption, which is exact)"
            )

    def image_preprocess(self) -> Any:
        return self.preprocess

    def encode_images(self, batch: Any) -> torch.Tensor:
        return self.model.encode_image(batch.to(self.device)).float()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts)
        if self.trim:
            return encode_text_trimmed(self.model, tokens).float()
        return self.model.encode_text(tokens).float()

    def tower_layers(self, side: str) -> TowerLayers:
        tower = (
            openclip_layers.image_tower(self.model)
            if side == "image"
            else openclip_layers.text_tower(self.model)
        )
        if tower is None:
            raise UsageError(
                f"{self.spec}: its {side} tower has no per-layer definition in mgap (--layers)",
                hint="per-layer states need a ViT image tower with token or mean pooling and "
                "open_clip's own CLIP text tower; drop --layers",
            )
        return tower

    def encode_images_layers(
        self, batch: Any, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        return openclip_layers.image_layers(self.model, batch.to(self.device), layers, spaces)

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        tokens = self.tokenize(texts)
        return openclip_layers.text_layers(self.model, tokens, layers, spaces, self.trim)

    def provenance(self) -> dict[str, object]:
        cfg = dict(getattr(self.model.visual, "preprocess_cfg", {}) or {})
        return {
            **self.weights,
            "preprocessing": {
                "image": {k: str(v) for k, v in cfg.items()},
                "text": {
                    "tokenizer": type(self.tokenizer).__name__,
                    "context_length": int(getattr(self.tokenizer, "context_length", 0) or 0),
                    "trimmed_to_longest": self.trim,
                },
            },
            "quick_gelu": _uses_quick_gelu(self.model),
            **logit_scale_attrs(self.model),
        }


def _uses_quick_gelu(model: Any) -> bool:
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


def load(spec: ModelSpec, device: str, **options: object) -> OpenClipModel:
    check_options(spec, options, {})
    try:
        return OpenClipModel(spec, device)
    except (FileNotFoundError, ConnectionError) as exc:
        raise ModelUnavailableError(f"model {spec}: {exc}") from exc
