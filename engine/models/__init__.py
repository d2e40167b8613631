"""Model adapters: `load_model(spec)` dispatches to one module per family.

Each family module exposes `load(spec: ModelSpec, device: str, **options) -> EmbeddingModel`.
"""

from __future__ import annotations

import importlib
import re

from mgap.engine.models.base import EmbeddingModel
from mgap.engine.specs import FAMILY_MODULES, ModelSpec, parse_model_spec


def resolve_device(device: str = "auto") -> str:
    """`auto` -> cuda when available, else cpu; anything else is passed through to torch."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        from mgap.core.errors import UsageError

        raise UsageError(f"unknown --device {device!r}", hint="use auto, cpu, cuda, cuda:N or mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from mgap.core.errors import UsageError

        raise UsageError(
            f"--device {device} asked for, but torch sees no CUDA device",
            hint="use --device cpu or auto",
        )
    return device


def load_model(spec: str | ModelSpec, device: str = "cpu", **options: object) -> EmbeddingModel:
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    module = importlib.import_module(f"mgap.engine.models.{FAMILY_MODULES[spec.family]}")
    return module.load(spec, device, **options)


__all__ = ["FAMILY_MODULES", "EmbeddingModel", "load_model", "resolve_device"]
