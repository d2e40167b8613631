"""The toy CLIP: a small conv image tower and a small transformer text tower.

Why this shape: it trains to well above chance on the synthetic shapes in about a minute
on two CPU cores, yet has everything the gap papers vary: two separate towers projected
into one space, the symmetric InfoNCE loss and a fixed or learned temperature.
The image embedding is the projection of the flattened conv features (position is kept,
since captions may name it); the text embedding is the projection of the masked mean of
the transformer's token states. Neither is L2-normalised (the loss normalises).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAD, UNK = "<pad>", "<unk>"


@dataclass(frozen=True)
class ToyArchitecture:
    embed_dim: int = 64
    image_size: int = 32
    channels: tuple[int, ...] = (16, 32, 64)
    text_width: int = 64
    text_layers: int = 1
    text_heads: int = 4
    max_tokens: int = 24

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> ToyArchitecture:
        return cls(**{**doc, "channels": tuple(doc["channels"])})


class ToyTokenizer:
    """Lower-case words of a closed vocabulary; ids 0 = padding, 1 = unknown word."""

    def __init__(self, vocabulary: Sequence[str], max_tokens: int) -> None:
        self.vocabulary = list(vocabulary)
        self.index = {w: i + 2 for i, w in enumerate(self.vocabulary)}
        self.max_tokens = max_tokens

    @property
    def size(self) -> int:
        return len(self.vocabulary) + 2

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        ids = np.zeros((len(texts), self.max_tokens), dtype=np.int64)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z]+", text.lower())[: self.max_tokens]
            ids[row, : len(words)] = [self.index.get(w, 1) for w in words]
            if not words:
                ids[row, 0] = 1  # an empty caption still has one (unknown) token to pool
        return torch.from_numpy(ids)


class ToyPreprocess:
    """PIL image -> float tensor (3, S, S) in [-1, 1]; a class so DataLoader workers can pickle it."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size

    def pixels(self, image) -> np.ndarray:
        """uint8 (S, S, 3): the resize that training and extraction share."""
        from PIL import Image

        image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        return np.asarray(image)

    def __call__(self, image) -> torch.Tensor:
        return pixels_to_input(torch.from_numpy(self.pixels(image).copy()).permute(2, 0, 1))


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, S, S) -> float in [-1, 1], shared by training and extraction."""
    return pixels.float().div(127.5).sub(1.0)


class ToyCLIP(nn.Module):
    def __init__(self, arch: ToyArchitecture, vocab_size: int, temperature: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 5  # RGB plus two coordinate channels (CoordConv), so pooling keeps position
        for k, width in enumerate(arch.channels):
            stride = 2 if k < len(arch.channels) - 1 else 1
            layers += [
                nn.Conv2d(previous, width, 3, stride=stride, padding=1),
                nn.BatchNorm2d(width),
                nn.GELU(),
            ]
            previous = width
        self.image_tower = nn.Sequential(*layers)
        self.image_proj = nn.Linear(2 * previous, arch.embed_dim)
        ramp = torch.linspace(-1.0, 1.0, arch.image_size)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij"))
        self.register_buffer("coords", coords, persistent=False)
        self.token_embedding = nn.Embedding(vocab_size, arch.text_width, padding_idx=0)
        self.position_embedding = nn.Parameter(torch.randn(arch.max_tokens, arch.text_width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            arch.text_width,
            arch.text_heads,
            dim_feedforward=2 * arch.text_width,
            dropout=0.0,
            batch_first=True,
        )
        self.text_tower = nn.TransformerEncoder(layer, arch.text_layers, enable_nested_tensor=False)
        self.text_proj = nn.Linear(arch.text_width, arch.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        coords = self.coords.to(images.dtype).expand(len(images), -1, -1, -1)
        features = self.image_tower(torch.cat([images, coords], dim=1))
        pooled = torch.cat([features.mean((2, 3)), features.amax((2, 3))], dim=1)
        return self.image_proj(pooled)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != 0
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        x = self.text_tower(x, src_key_padding_mask=~mask)
        weights = mask.unsqueeze(-1).to(x.dtype)
        return self.text_proj((x * weights).sum(1) / weights.sum(1).clamp(min=1.0))

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over the batch; pair i is (image i, caption i)."""
        x = F.normalize(self.encode_image(images), dim=-1)
        y = F.normalize(self.encode_text(tokens), dim=-1)
        logits = self.logit_scale.clamp(max=math.log(100.0)).exp() * x @ y.T
        target = torch.arange(len(x), device=x.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().clamp(max=math.log(100.0)).exp())
