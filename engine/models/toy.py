"""`toy:NAME` (a toy CLIP trained by `mgap train-toy`) and `toy:NAME@random` (its twin at init).

`toy:NAME@random` rebuilds the same architecture and vocabulary from the trained model's
config.json with the seed recorded there, i.e. exactly the weights training started from.
`@random:SEED` picks another seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from mgap.core.errors import UsageError
from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.checkpoints import checkpoint_path, logit_scale_attrs
from mgap.engine.specs import ModelSpec
from mgap.engine.toy.model import ToyPreprocess
from mgap.engine.toy.storage import load_toy


class ToyModel(EmbeddingModel):
    family = "toy"
    embedding_image = "image_proj(mean+max pooled CoordConv features), not normalised"
    embedding_text = "text_proj(masked mean of transformer token states), not normalised"

    def __init__(self, spec: ModelSpec, device: str) -> None:
        super().__init__(spec, device)
        checkpoint = checkpoint_path(spec)
        random_init, seed = (False, None) if checkpoint else _random_tag(spec)
        self.toy = load_toy(
            spec.id, random_init=random_init, random_seed=seed, device=device, checkpoint=checkpoint
        )

    def image_preprocess(self) -> Callable[[Any], torch.Tensor]:
        return ToyPreprocess(self.toy.architecture.image_size)

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.toy.model.encode_image(batch.to(self.device, torch.float32))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.toy.model.encode_text(self.toy.tokenizer(list(texts)).to(self.device))

    def provenance(self) -> dict[str, object]:
        training = self.toy.config.get("training", {})
        weights = (
            f"random(seed={self.toy.random_seed})"
            if self.toy.random_seed is not None
            else str(self.toy.checkpoint or self.toy.folder / "model.safetensors")
        )
        return {
            "weights": weights,
            "preprocessing": (
                f"bilinear resize to {self.toy.architecture.image_size}px, pixels/127.5-1; "
                f"word tokenizer ({len(self.toy.tokenizer.vocabulary)} words, "
                f"max {self.toy.architecture.max_tokens} tokens, zero padding)"
            ),
            "toy_temperature": float(training.get("temperature", 0.0)),
            "toy_learned_temperature": bool(training.get("learned_temperature", False)),
            "toy_caption_detail": float(training.get("caption_detail", 0.0)),
            "toy_seed": int(training.get("seed", 0)),
            **logit_scale_attrs(self.toy.model),
        }


def _random_tag(spec: ModelSpec) -> tuple[bool, int | None]:
    """(random init?, explicit seed or None) from the spec's tag."""
    if spec.tag is None:
        return False, None
    kind, _, seed = spec.tag.partition(":")
    if kind != "random" or (seed and not seed.isdigit()):
        raise UsageError(
            f"unknown toy model tag {spec.tag!r} in {spec.text}",
            hint="use toy:NAME (trained), toy:NAME@random (random init, optionally "
            "@random:SEED) or toy:NAME@/path/epoch_N.pt (a train-toy checkpoint)",
        )
    return True, int(seed) if seed else None


def load(spec: ModelSpec, device: str, **options: object) -> EmbeddingModel:
    return ToyModel(spec, device)
