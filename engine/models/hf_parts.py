"""Pieces shared by the BLIP, BLIP-2 and LLaVA adapters: options, precision, preprocessing
and the provenance of a transformers checkpoint folder."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
from mgap.engine.models.base import LayerStates, TowerLayers
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch
    from PIL import Image

PRECISIONS = ("float32", "float16", "bfloat16")


def check_options(
    spec: ModelSpec, options: Mapping[str, object], allowed: Mapping[str, tuple[str, ...] | None]
) -> dict[str, str]:
    """Options as strings; an unknown key or a value outside its choices (None = free) is a
    usage error that lists what is accepted, so a typo never silently falls back."""
    out: dict[str, str] = {}
    for key, value in options.items():
        if key not in allowed:
            raise UsageError(
                f"{spec} does not take the option {key!r}",
                hint=f"options for {spec.family} models: {', '.join(sorted(allowed)) or 'none'}",
            )
        text = str(value)
        choices = allowed[key]
        if choices is not None and text not in choices:
            raise UsageError(
                f"option {key}={text!r} for {spec} is not one of {', '.join(choices)}",
                hint=f"pass {key}={choices[0]}",
            )
        out[key] = text
    return out


def int_option(spec: ModelSpec, options: Mapping[str, str], key: str, default: int) -> int:
    text = options.get(key)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"option {key}={text!r} for {spec} is not a positive integer")
    return int(text)


def torch_dtype(device: str, precision: str | None, gpu_default: str) -> torch.dtype:
    """fp32 on CPU (half precision there is slow and inexact); `gpu_default` on CUDA."""
    import torch

    name = precision or (gpu_default if device.startswith("cuda") else "float32")
    return getattr(torch, name)


RETRIEVAL_HINT = (
    "use an image-text retrieval checkpoint such as hf:Salesforce/blip-itm-base-coco "
    "or hf:Salesforce/blip2-itm-vit-g"
)


def refuse_random_heads(
    spec: ModelSpec,
    missing_keys: Sequence[str],
    prefixes: Sequence[str],
    *,
    what: str = "image-text contrastive weights",
    hint: str = RETRIEVAL_HINT,
) -> None:
    """Refuse a checkpoint whose embedding weights would load randomly initialised."""
    missing = sorted(key for key in missing_keys if key.startswith(tuple(prefixes)))
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UsageError(f"{spec} lacks its {what} ({shown}); they would be random", hint=hint)


def check_architecture(spec: ModelSpec, config: Any, expected: str) -> None:
    """A checkpoint saved from another head class (captioning, VQA) is refused before loading."""
    archs = list(getattr(config, "architectures", None) or [])
    if archs and expected not in archs:
        raise UsageError(
            f"{spec} is a {archs[0]} checkpoint, not {expected}: its text encoder and "
            "contrastive projections would load randomly initialised",
            hint=RETRIEVAL_HINT,
        )


class HFImagePreprocess:
    """PIL image -> (3, H, W) pixel tensor by the checkpoint's own image processor. A plain
    object holding only the processor, so it pickles into DataLoader workers."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = self.image_processor(images=image.convert("RGB"), return_tensors="pt")
        return pixels["pixel_values"][0]


def image_processing_record(image_processor: Any) -> dict[str, object]:
    """The settings that decide the pixels: enough to reproduce them elsewhere."""
    settings = image_processor.to_dict()
    keys = (
        "image_processor_type",
        "size",
        "crop_size",
        "do_resize",
        "do_center_crop",
        "do_pad",
        "resample",
        "do_rescale",
        "rescale_factor",
        "do_normalize",
        "image_mean",
        "image_std",
        "do_convert_rgb",
    )
    return {key: settings[key] for key in keys if settings.get(key) is not None}


def weights_record(spec: ModelSpec, folder: Path, architecture: str) -> dict[str, object]:
    """Where the weights came from; a hub cache snapshot folder is named by its commit."""
    folder = Path(folder).resolve()
    record: dict[str, object] = {
        "source": spec.id,
        "folder": str(folder),
        "architecture": architecture,
    }
    if folder.parent.name == "snapshots":
        record["revision"] = folder.name
    return record


def as_embedding(tensor: torch.Tensor) -> torch.Tensor:
    """Embeddings leave the adapters in float32 whatever precision the model ran in."""
    import torch

    return tensor.to(torch.float32)


# ---- per-layer states (mgap extract --layers, docs/depth.md) -----------------------------
SPACES = ("raw", "lens")


def check_request(
    spec: ModelSpec, side: str, layers: Sequence[int], spaces: Sequence[str], tower: TowerLayers
) -> None:
    """Absolute layer indices must name hidden states the tower has (0 .. count - 1), and
    `lens` needs a tower with its own final norm and projection."""
    bad = [layer for layer in layers if not 0 <= layer < tower.count]
    if bad:
        raise UsageError(
            f"layer {bad[0]} is out of range for the {side} tower of {spec}, "
            f"which has layers 0..{tower.count - 1}",
            hint="pass --layers all or indices in that range",
        )
    unknown = [space for space in spaces if space not in SPACES]
    if unknown:
        raise UsageError(f"unknown layer space {unknown[0]!r}", hint="use raw or lens")
    if "lens" in spaces and not tower.lens:
        raise UsageError(
            f"the {side} tower of {spec} has no lens (no final norm and projection of its own)",
            hint="use --layer-space raw",
        )


def hidden_states_of(output: Any, spec: ModelSpec) -> tuple[torch.Tensor, ...]:
    """The `hidden_states` of a transformers output run with `output_hidden_states=True`."""
    states = getattr(output, "hidden_states", None)
    if states is None:
        raise UsageError(
            f"{spec}: this transformers version returned no hidden states",
            hint="per-layer states need transformers 5 (pip install -U transformers)",
        )
    return tuple(states)


def gather_layers(
    states: Sequence[torch.Tensor],
    layers: Sequence[int],
    spaces: Sequence[str],
    raw: Callable[[torch.Tensor], torch.Tensor],
    lens: Callable[[torch.Tensor], torch.Tensor] | None,
) -> LayerStates:
    """Pool each requested hidden state (B, T, D) to `raw` (B, d_raw) and, under the lens,
    to (B, d): stacked to (B, L, ·) float32, None for a space not asked for."""
    import torch

    def stack(pool: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return torch.stack([as_embedding(pool(states[k])) for k in layers], dim=1)

    return LayerStates(
        raw=stack(raw) if "raw" in spaces else None,
        lens=stack(lens) if "lens" in spaces and lens is not None else None,
    )


def masked_mean(states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over the kept positions of each row, in fp32; a row with none gives zeros."""
    import torch

    weights = keep.to(states.device, torch.float32)[..., None]
    total = (states.to(torch.float32) * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)
