"""The adapter contract every model family implements.

An adapter says exactly which tensor is its embedding (docs/design.md §8) and splits the
work so extraction can overlap decoding and compute: `preprocess` runs in DataLoader
worker processes (it must be picklable and must not touch the model), `encode_images`
and `encode_texts` run in the main process under `torch.inference_mode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch
    from PIL import Image


class EmbeddingModel(ABC):
    """One loaded model. Subclasses set the class attributes and implement the encoders."""

    family: str = ""
    #: the exact tensor used as the embedding; "" for a side the model does not have
    embedding_image: str = ""
    embedding_text: str = ""

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        self.spec = spec
        self.device = device

    @property
    def has_image(self) -> bool:
        return bool(self.embedding_image)

    @property
    def has_text(self) -> bool:
        return bool(self.embedding_text)

    # ---- images --------------------------------------------------------------------
    def image_preprocess(self) -> Callable[[Image.Image], Any]:
        """A picklable callable PIL image -> tensor (or dict of tensors) for one image."""
        raise UsageError(f"{self.spec} has no image tower")

    def encode_images(self, batch: Any) -> torch.Tensor:
        """Embeddings (B, d) for a collated batch of `image_preprocess` outputs."""
        raise UsageError(f"{self.spec} has no image tower")

    # ---- texts ---------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings (B, d) for a list of captions, independent of the batch's other items."""
        raise UsageError(f"{self.spec} has no text tower")

    # ---- provenance ----------------------------------------------------------------
    @abstractmethod
    def provenance(self) -> dict[str, object]:
        """Store attributes: at least `weights` (tag, revision, folder or random seed) and
        `preprocessing` (resize, crop, normalisation, tokenizer and padding)."""

    def describe(self) -> dict[str, object]:
        return {
            "model": self.spec.text,
            "family": self.family,
            "embedding_image": self.embedding_image,
            "embedding_text": self.embedding_text,
            **self.provenance(),
        }
