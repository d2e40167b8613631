"""The adapter contract every model family implements.

An adapter says exactly which tensor is its embedding (docs/design.md §8) and splits the
work so extraction can overlap decoding and compute: `preprocess` runs in DataLoader
worker processes (it must be picklable and must not touch the model), `encode_images`
and `encode_texts` run in the main process under `torch.inference_mode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
from mgap.engine.models.checkpoints import checkpoint_attrs
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch
    from PIL import Image


@dataclass(frozen=True)
class TowerLayers:
    """What `--layers` stores for one tower (docs/design.md §8, store layout in §5)."""

    count: int  # hidden states: the input to block 1 (layer 0) plus one per block
    pooling: str  # exactly what one raw vector of a layer is
    lens: str  # the tower's own final norm and projection applied to a pooled state


@dataclass(frozen=True)
class LayerStates:
    """Pooled states of the requested layers for one batch, from the embedding's own
    forward pass: `raw` (B, L, d_raw) and `lens` (B, L, d), None when not asked for."""

    raw: torch.Tensor | None
    lens: torch.Tensor | None


def _no_layers(spec: ModelSpec) -> UsageError:
    return UsageError(f"{spec} does not expose per-layer states (--layers)")


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

    # ---- per-layer states (mgap extract --layers) --------------------------------------
    def tower_layers(self, side: str) -> TowerLayers:
        """The layer count and pooling definition of the `side` ("image"/"text") tower."""
        raise _no_layers(self.spec)

    def encode_images_layers(
        self, batch: Any, layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        """`encode_images(batch)` and, from the same forward pass, the pooled states of
        `layers` (absolute indices, ascending) in `spaces` ("raw", "lens")."""
        raise _no_layers(self.spec)

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        """`encode_texts(texts)` and the pooled states of `layers`, as for images."""
        raise _no_layers(self.spec)

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
            **checkpoint_attrs(self.spec),
        }
