"""Training checkpoints as model weights (docs/design.md §4).

`open_clip:ARCH@/runs/exp1/checkpoints/epoch_*.pt` and `toy:NAME@DIR/epoch_*.pt` name
checkpoint files in the tag. A glob there expands to one spec per file, so one store per
checkpoint, and every store made from a checkpoint records the file (`checkpoint`) and
its training step (`checkpoint_step`): the checkpoint's own `step` or `epoch` entry, else
the last number in the file name.
"""

from __future__ import annotations

import glob
import re
from functools import lru_cache
from pathlib import Path

from mgap.core.errors import UsageError
from mgap.engine.models.hub import looks_like_path
from mgap.engine.specs import ModelSpec

#: families whose tag may be a checkpoint file
CHECKPOINT_FAMILIES = ("open_clip", "toy")
#: suffixes of checkpoint files
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
#: the entries of a saved checkpoint that hold its step, in order of preference
STEP_KEYS = ("step", "epoch")


def checkpoint_path(spec: ModelSpec) -> Path | None:
    """The checkpoint file (or file glob) `spec`'s tag names, else None."""
    tag = spec.tag
    if spec.family not in CHECKPOINT_FAMILIES or not tag:
        return None
    if looks_like_path(tag) or "/" in tag or tag.lower().endswith(CHECKPOINT_SUFFIXES):
        return Path(tag).expanduser()
    return None


def _natural_key(path: str) -> list[object]:
    """`epoch_9.pt` before `epoch_10.pt`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def expand_checkpoints(spec: ModelSpec, pattern: Path) -> list[str]:
    """One spec per file the glob in `spec`'s tag matches, in natural file-name order."""
    files = [f for f in glob.glob(str(pattern)) if Path(f).is_file()]
    if not files:
        raise UsageError(
            f"checkpoint glob {spec.tag!r} in {spec} matches no file",
            hint="check the folder and the pattern, e.g. /runs/exp1/checkpoints/epoch_*.pt",
        )
    return [
        ModelSpec(spec.family, spec.id, str(Path(f).resolve())).text
        for f in sorted(files, key=_natural_key)
    ]


@lru_cache(maxsize=256)
def _saved_step(path: str, mtime_ns: int) -> int | None:
    """The `step`/`epoch` entry of a torch checkpoint, read through mmap (no tensor copy)."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 - a legacy or safetensors file: fall back to the name
        return None
    if not isinstance(saved, dict):
        return None
    for key in STEP_KEYS:
        value = saved.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def checkpoint_step(path: Path) -> int | None:
    """The training step of a checkpoint file: its own entry, else the name's last number."""
    if path.suffix != ".safetensors":
        step = _saved_step(str(path), path.stat().st_mtime_ns)
        if step is not None:
            return step
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def checkpoint_attrs(spec: ModelSpec) -> dict[str, object]:
    """The root attributes of a store made from a checkpoint file: `checkpoint` and,
    where known, `checkpoint_step`; {} for any other spec."""
    path = checkpoint_path(spec)
    if path is None or not path.is_file():
        return {}
    attrs: dict[str, object] = {"checkpoint": str(path.resolve())}
    step = checkpoint_step(path)
    if step is not None:
        attrs["checkpoint_step"] = step
    return attrs


def logit_scale_attrs(model: object) -> dict[str, float]:
    """`logit_scale` (the multiplier exp(log scale), i.e. 1/temperature) and SigLIP's
    `logit_bias`, read from the loaded weights; {} for a model that has neither."""
    attrs: dict[str, float] = {}
    scale = getattr(model, "logit_scale", None)
    temperature = getattr(model, "temp", None)
    if hasattr(scale, "exp"):
        attrs["logit_scale"] = float(scale.detach().float().exp().reshape(-1)[0])
    elif hasattr(temperature, "detach"):
        attrs["logit_scale"] = 1.0 / float(temperature.detach().float().reshape(-1)[0])
    bias = getattr(model, "logit_bias", None)
    if hasattr(bias, "detach"):
        attrs["logit_bias"] = float(bias.detach().float().reshape(-1)[0])
    return attrs
