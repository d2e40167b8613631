"""Training and sweep settings, torch-free so the CLI checks its arguments before importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mgap.core.errors import UsageError
from mgap.engine.datasets.synthetic import CAPTIONS_PER_IMAGE

SWEEPS = {"temperature": "temperature", "caption-detail": "caption_detail"}
DEFAULT_VALUES = {
    "temperature": (0.01, 0.03, 0.07, 0.2, 0.5),
    "caption-detail": (0.0, 0.25, 0.5, 0.75, 1.0),
}


@dataclass
class TrainConfig:
    temperature: float = 0.07  # the initial value when learned_temperature is set
    learned_temperature: bool = False
    caption_detail: float = 0.5
    epochs: int = 20
    seed: int = 0
    n_train: int = 2000
    n_test: int = 500
    batch_size: int = 64
    lr: float = 3e-3
    captions_per_image: int = CAPTIONS_PER_IMAGE

    def validate(self) -> None:
        if not 0.0 < self.temperature <= 10.0:
            raise UsageError(f"--temperature must be in (0, 10], got {self.temperature}")
        if not 0.0 <= self.caption_detail <= 1.0:
            raise UsageError(f"--caption-detail must be in [0, 1], got {self.caption_detail}")
        if self.epochs < 1 or self.n_train < 2 or self.n_test < 1 or self.batch_size < 2:
            raise UsageError("epochs, n_train, n_test and batch_size must be positive (batch >= 2)")

    def dataset_options(self, split: str) -> dict[str, Any]:
        """The synthetic dataset this model was trained (or is tested) on."""
        return {
            "n": self.n_train if split == "train" else self.n_test,
            "seed": self.seed,
            "caption_detail": self.caption_detail,
            "captions_per_image": self.captions_per_image,
        }


def parse_values(kind: str, text: str | None) -> list[float]:
    if kind not in SWEEPS:
        raise UsageError(f"unknown sweep {kind!r}", hint=f"use one of: {', '.join(SWEEPS)}")
    if not text:
        return list(DEFAULT_VALUES[kind])
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise UsageError(
            f"--values {text!r} is not a comma-separated list of numbers",
            hint="e.g. --values 0.01,0.07,0.5",
        ) from exc
