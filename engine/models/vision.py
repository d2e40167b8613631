"""`vision:NAME_OR_FOLDER` and `vision:timm/NAME`: image-only encoders (DINOv2, ViT, ConvNeXt).

Option `pool=cls|mean`, recorded in `embedding_image`:
- transformers: `cls` = the CLS token of `last_hidden_state` (after the final norm), not
  `pooler_output`, because ViT classification checkpoints leave that pooler randomly
  initialised; `mean` = the mean of the patch tokens (CLS, distillation and register tokens
  excluded). Convolutional models have no CLS token: `mean` is their `pooler_output`
  (global average pool of the last stage, plus the final norm where the model has one).
- timm: the model's pre-logits features (`num_classes=0`) with `global_pool` `token` (cls)
  or `avg` (mean); without the option, the model's own default pooling.
Default: cls where the model has a CLS token, else mean.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models.base import EmbeddingModel, LayerStates, TowerLayers
from mgap.engine.models.hf_parts import (
    HFImagePreprocess,
    check_options,
    check_request,
    gather_layers,
    hidden_states_of,
    image_processing_record,
    weights_record,
)
from mgap.engine.models.hub import cached_file, hub_offline, resolve_pretrained, unavailable
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch

POOLS = ("cls", "mean")
TIMM_PREFIX = "timm/"
RANDOM_SEED = 0


class HFVisionEncoder(EmbeddingModel):
    """A transformers image backbone loaded with AutoModel + AutoImageProcessor."""

    family = "vision"

    def __init__(self, spec: ModelSpec, device: str, folder: Path, pool: str | None) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        super().__init__(spec, device)
        config = AutoConfig.from_pretrained(folder)
        if hasattr(config, "text_config"):
            raise UsageError(
                f"{spec} is a two-tower {config.model_type} model, not an image-only encoder",
                hint=f"use hf:{spec.id}",
            )
        self.folder = folder
        self.model = AutoModel.from_pretrained(folder).to(device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(folder)
        embeddings = getattr(self.model, "embeddings", None)
        self.has_cls = embeddings is not None and hasattr(embeddings, "cls_token")
        #: leading non-patch tokens: CLS, DeiT's distillation token, DINOv2's registers
        self.prefix = (
            int(self.has_cls)
            + int(hasattr(embeddings, "distillation_token"))
            + int(getattr(config, "num_register_tokens", 0) or 0)
        )
        self.pool = pool or ("cls" if self.has_cls else "mean")
        if self.pool == "cls" and not self.has_cls:
            raise UsageError(f"{spec} has no CLS token", hint="use pool=mean")
        name = type(self.model).__name__
        self.embedding_image = {
            ("cls", True): f"{name} last_hidden_state[:, 0] (CLS token after the final norm)",
            ("mean", True): f"{name} mean of last_hidden_state[:, {self.prefix}:] (patch tokens)",
        }.get((self.pool, self.has_cls), f"{name} pooler_output (global average pool)")

    def image_preprocess(self) -> HFImagePreprocess:
        return HFImagePreprocess(self.image_processor)

    def _forward(self, batch: Any, hidden: bool) -> tuple[torch.Tensor, Any]:
        out = self.model(
            pixel_values=batch.to(self.device, dtype=self.model.dtype), output_hidden_states=hidden
        )
        hidden_state = out.last_hidden_state
        if self.has_cls:
            pooled = self._pool(hidden_state)
        elif getattr(out, "pooler_output", None) is not None:
            pooled = out.pooler_output
        else:
            pooled = hidden_state.mean(1) if hidden_state.dim() == 3 else hidden_state.mean((2, 3))
        return pooled.flatten(1).float(), out

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0] if self.pool == "cls" else tokens[:, self.prefix :].mean(1)

    def encode_images(self, batch: Any) -> torch.Tensor:
        return self._forward(batch, hidden=False)[0]

    def tower_layers(self, side: str) -> TowerLayers:
        if side != "image" or not self.has_cls:
            raise UsageError(
                f"{self.spec} has no per-layer token states of one width (--layers)",
                hint="per-layer states need a ViT-style encoder (DINOv2, ViT)",
            )
        token = "CLS token [:, 0]" if self.pool == "cls" else f"mean of [:, {self.prefix}:]"
        lens = "the final layernorm (no projection exists)" if self._norm() else ""
        count = int(self.model.config.num_hidden_layers) + 1
        return TowerLayers(
            count,
            f"{token} of hidden_states[k] (patch tokens), as the "
            "embedding pools; layer 0: the embeddings",
            lens,
        )

    def _norm(self) -> Any:
        return getattr(self.model, "layernorm", None)

    def encode_images_layers(
        self, batch: Any, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        check_request(self.spec, "image", layers, spaces, self.tower_layers("image"))
        embedding, out = self._forward(batch, hidden=True)
        norm = self._norm()
        return embedding, gather_layers(
            hidden_states_of(out, self.spec),
            layers,
            spaces,
            self._pool,
            None if norm is None else lambda h: self._pool(norm(h)),
        )

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, type(self.model).__name__),
            "preprocessing": {"image": image_processing_record(self.image_processor)},
            "pool": self.pool,
        }


class TimmVisionEncoder(EmbeddingModel):
    """A timm backbone's pooled pre-logits features."""

    family = "vision"

    def __init__(self, spec: ModelSpec, device: str, model: Any, weights: str) -> None:
        import timm.data

        super().__init__(spec, device)
        self.model = model.to(device).eval()
        self.weights = weights
        self.data_config = timm.data.resolve_data_config({}, model=model)
        self.transform = timm.data.create_transform(**self.data_config, is_training=False)
        pool = getattr(model, "global_pool", "")
        self.pool_name = str(getattr(pool, "pool_type", pool))
        self.embedding_image = (
            f"timm {model.default_cfg.get('architecture', spec.id)} pre-logits features "
            f"(num_classes=0, global_pool={self.pool_name!r})"
        )

    def image_preprocess(self) -> Any:
        return self.transform

    def encode_images(self, batch: Any) -> torch.Tensor:
        return self.model(batch.to(self.device)).flatten(1).float()

    def provenance(self) -> dict[str, object]:
        return {
            "weights": self.weights,
            "preprocessing": {"image": {k: str(v) for k, v in self.data_config.items()}},
            "pool": self.pool_name,
        }


def timm_cached_checkpoint(cfg: Any) -> Path | None:
    """The cached checkpoint of a timm pretrained config (HF cache or torch hub), else None."""
    if cfg.hf_hub_id:
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else []
        for filename in [*names, "model.safetensors", "pytorch_model.bin"]:
            found = cached_file(cfg.hf_hub_id, filename)
            if found is not None:
                return found
    if cfg.url:
        import torch.hub

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if path.is_file():
            return path
    return None


def _timm_checkpoint(name: str, what: str) -> Path | None:
    """The cached checkpoint, or None when timm may download it; raises when offline."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise UsageError(f"{what}: timm has no pretrained weights for {name}")
    found = timm_cached_checkpoint(cfg)
    if found is None and hub_offline():
        raise unavailable(
            what, cfg.hf_hub_id or cfg.url, local_hint="pass @random for a random init"
        )
    return found


def load_timm(spec: ModelSpec, device: str, pool: str | None) -> TimmVisionEncoder:
    import timm
    import torch

    name = spec.id[len(TIMM_PREFIX) :]
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        raise UsageError(
            f"unknown timm model {arch!r} in {spec}", hint="see timm.list_models() for names"
        )
    kwargs: dict[str, object] = {"num_classes": 0}
    if pool is not None:
        kwargs["global_pool"] = {"cls": "token", "mean": "avg"}[pool]
    what = f"model {spec}"
    try:
        if spec.tag == "random":
            torch.manual_seed(RANDOM_SEED)
            model = timm.create_model(name, pretrained=False, **kwargs)
            weights = f"random init (torch.manual_seed({RANDOM_SEED}))"
        elif spec.tag is not None:
            raise UsageError(f"{spec}: vision:timm/ takes @random or no tag", hint="write NAME.TAG")
        else:
            checkpoint = _timm_checkpoint(name, what)
            overlay = {"file": str(checkpoint)} if checkpoint else None
            model = timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
            )
            weights = f"timm {name}" + (f" ({checkpoint})" if checkpoint else "")
    except (ValueError, AssertionError, TypeError) as exc:
        raise UsageError(f"{spec}: timm refused the options {kwargs}: {exc}") from exc
    except OSError as exc:
        raise ModelUnavailableError(f"{what}: could not get timm weights: {exc}") from exc
    return TimmVisionEncoder(spec, device, model, weights)


def load(spec: ModelSpec, device: str, **options: object) -> EmbeddingModel:
    opts = check_options(spec, options, {"pool": POOLS})
    pool = opts.get("pool")
    if spec.id.startswith(TIMM_PREFIX) and not Path(spec.id).expanduser().is_dir():
        return load_timm(spec, device, pool)
    folder = resolve_pretrained(spec.id, what=f"vision encoder {spec}", revision=spec.tag)
    return HFVisionEncoder(spec, device, folder, pool)
