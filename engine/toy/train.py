"""Train a toy CLIP on the synthetic train split, on CPU, in about a minute.

Images are rendered once into a uint8 tensor (2000 images of 64x64 are 25 MB), then every
epoch visits each image once with one of its captions drawn at random, as CLIP does with
COCO. Held-out zero-shot shape accuracy on the test split is the check that it learned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mgap import __version__
from mgap.engine.datasets.synthetic import ATTRIBUTES, SHAPES, SyntheticManifest, vocabulary
from mgap.engine.datasets.synthetic import load as load_synthetic
from mgap.engine.toy.config import TrainConfig
from mgap.engine.toy.model import (
    ToyArchitecture,
    ToyCLIP,
    ToyPreprocess,
    ToyTokenizer,
    pixels_to_input,
)
from mgap.engine.toy.storage import build_model


@dataclass
class TrainResult:
    model: ToyCLIP
    tokenizer: ToyTokenizer
    architecture: ToyArchitecture
    config: dict[str, Any]  # what config.json holds
    metrics: dict[str, Any]  # what metrics.json holds


def render_pixels(manifest: SyntheticManifest, image_size: int) -> torch.Tensor:
    """uint8 (N, 3, S, S) of every record, rendered once and resized as extraction does."""
    resize = ToyPreprocess(image_size).pixels
    frames = [resize(manifest.load_image(i)) for i in range(len(manifest.records))]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


@torch.inference_mode()
def encode_pixels(model: ToyCLIP, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat(
        [
            model.encode_image(pixels_to_input(pixels[i : i + batch]))
            for i in range(0, len(pixels), batch)
        ]
    )


@torch.inference_mode()
def encode_texts(model: ToyCLIP, tokenizer: ToyTokenizer, texts: list[str]) -> torch.Tensor:
    return torch.cat(
        [model.encode_text(tokenizer(texts[i : i + 512])) for i in range(0, len(texts), 512)]
    )


def zero_shot_accuracy(
    model: ToyCLIP,
    tokenizer: ToyTokenizer,
    image_embeddings: torch.Tensor,
    labels: list[str],
    class_names: list[str],
    templates: list[str],
) -> float:
    """Top-1 accuracy of the nearest class prompt (mean of normalised template embeddings)."""
    texts = [t.format(name) for name in class_names for t in templates]
    prompts = F.normalize(encode_texts(model, tokenizer, texts), dim=-1)
    classes = F.normalize(prompts.reshape(len(class_names), len(templates), -1).mean(1), dim=-1)
    predicted = (F.normalize(image_embeddings, dim=-1) @ classes.T).argmax(1).numpy()
    truth = np.asarray([class_names.index(label) for label in labels])
    return float((predicted == truth).mean())


def _fit(
    model: ToyCLIP,
    pixels: torch.Tensor,
    tokens: torch.Tensor,
    config: TrainConfig,
    log: Callable[[str], None],
    on_epoch: Callable[[int, ToyCLIP], None],
) -> tuple[list[float], int]:
    """AdamW with a cosine schedule, one random caption per image and step; returns the
    mean loss of each epoch and the number of steps. `on_epoch(k, model)` follows epoch k."""
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.01
    )
    n = len(tokens)
    total = math.ceil(n / config.batch_size) * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    epoch_losses: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        losses = []
        for start in range(0, n, config.batch_size):
            rows = order[start : start + config.batch_size]
            if len(rows) < 2:
                continue
            pick = torch.from_numpy(rng.integers(tokens.shape[1], size=len(rows)))
            loss = model.loss(pixels_to_input(pixels[rows]), tokens[rows, pick])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
        log(f"epoch {epoch + 1}/{config.epochs}: loss {epoch_losses[-1]:.4f}")
        on_epoch(epoch + 1, model)
    model.eval()
    return epoch_losses, total


def _attribute_accuracy(
    model: ToyCLIP, tokenizer: ToyTokenizer, embeddings: torch.Tensor, test: SyntheticManifest
) -> dict[str, float]:
    """Zero-shot accuracy of each attribute (colour, size, ...) over its own prompts."""
    return {
        key: zero_shot_accuracy(
            model,
            tokenizer,
            embeddings,
            [r.attributes[key] for r in test.records],
            list(ATTRIBUTES[key]),
            test.label_prompts[key],
        )
        for key in ATTRIBUTES
    }


def train_toy(
    config: TrainConfig,
    architecture: ToyArchitecture | None = None,
    *,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[int, ToyCLIP], None] | None = None,
) -> TrainResult:
    """Train from `build_model(seed)`, so `toy:NAME@random` is exactly the starting point;
    `on_epoch(k, model)` runs after each epoch k (`train-toy --checkpoints`)."""
    config.validate()
    arch = architecture or ToyArchitecture()
    log = log or (lambda message: None)
    started = time.time()
    train = load_synthetic(None, "train", kind="synthetic", **config.dataset_options("train"))
    test = load_synthetic(None, "test", kind="synthetic", **config.dataset_options("test"))
    pixels = render_pixels(train, arch.image_size)
    vocab = vocabulary()
    model, tokenizer = build_model(arch, vocab, config.temperature, config.seed)
    model.logit_scale.requires_grad_(config.learned_temperature)
    tokens = torch.stack([tokenizer(r.captions) for r in train.records])  # (N, C, L)
    epoch_losses, total = _fit(model, pixels, tokens, config, log, on_epoch or (lambda k, m: None))
    test_embeddings = encode_pixels(model, render_pixels(test, arch.image_size))
    shape_labels = [r.primary for r in test.records]
    accuracy = zero_shot_accuracy(
        model, tokenizer, test_embeddings, shape_labels, list(SHAPES), test.prompt_templates
    )
    seconds = time.time() - started
    attribute_accuracy = _attribute_accuracy(model, tokenizer, test_embeddings, test)
    log(f"zero-shot shape accuracy on {len(test.records)} test images: {accuracy:.3f}")
    metrics = {
        "loss_first_epoch": epoch_losses[0],
        "loss_last_epoch": epoch_losses[-1],
        "loss_per_epoch": epoch_losses,
        "chance_loss": math.log(min(config.batch_size, len(train.records))),
        "zero_shot_shape_accuracy": accuracy,
        "chance_accuracy": 1.0 / len(SHAPES),
        "zero_shot_attribute_accuracy": attribute_accuracy,
        "attribute_chance_accuracy": {k: 1.0 / len(v) for k, v in ATTRIBUTES.items()},
        "n_test": len(test.records),
        "final_temperature": model.temperature,
        "steps": total,
        "seconds": round(seconds, 2),
        "threads": torch.get_num_threads(),
    }
    doc = {
        "mgap_version": __version__,
        "format": "safetensors",
        "architecture": arch.to_dict(),
        "vocabulary": vocab,
        "training": {**asdict(config), "dataset": "synthetic", "split": "train"},
        "random_seed": config.seed,
    }
    return TrainResult(model, tokenizer, arch, doc, metrics)
