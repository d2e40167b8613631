"""The text side of a store: caption embeddings block by block, and the zero-shot prompts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mgap.engine.datasets import Manifest
from mgap.engine.models import EmbeddingModel
from mgap.store import schema as S
from mgap.store.layers import LayerSet, dataset_name
from mgap.store.writer import StoreWriter


def caption_blocks(caption_rows: np.ndarray, n_images: int, block_rows: int) -> np.ndarray:
    """Caption positions where each image block's captions start, then the caption count.

    Text rows are written (and batched) per image block, so a rank that owns image blocks
    [a, b) encodes exactly the text batches that a single process would: shards merge
    bit-equal to a one-process run.
    """
    starts = np.arange(0, n_images, block_rows)
    bounds = np.searchsorted(caption_rows, starts, side="left")
    return np.unique(np.append(bounds, len(caption_rows)).astype(np.int64))


def embed_captions(
    model: EmbeddingModel,
    writer: StoreWriter,
    manifest: Manifest,
    done: int,
    batch_size: int,
    dtype: str,
    after_block: Callable[[int], None],
    layers: LayerSet | None = None,
) -> None:
    """Caption rows from `done` on, one image block's captions per write; `after_block`
    gets the caption count written so far after each. With `layers`, each block's pooled
    layer states are written with it, from the same forward passes."""
    step = max(batch_size, 32)
    captions, rows = manifest.captions_and_rows()
    bounds = caption_blocks(rows, len(manifest.records), writer.block_rows)
    for stop in bounds[1:]:
        start = done
        if stop <= start:
            continue
        parts = [
            _encode(model, captions[i : min(i + step, stop)], layers)
            for i in range(start, stop, step)
        ]
        emb = np.concatenate([p[0] for p in parts]).astype(dtype)
        per_layer = {
            name: np.concatenate([p[1][name] for p in parts]).astype(dtype) for name in parts[0][1]
        }
        writer.write_texts(start, emb, per_layer)
        done = int(stop)
        after_block(done)


def _encode(
    model: EmbeddingModel, texts: list[str], layers: LayerSet | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(embeddings, pooled states by layer dataset name) of one batch of captions."""
    if layers is None:
        return model.encode_texts(texts).float().cpu().numpy(), {}
    emb, states = model.encode_texts_layers(texts, layers.layers, layers.spaces)
    per_layer = {}
    for space in layers.spaces:
        pooled = getattr(states, space).float().cpu().numpy()
        for j, k in enumerate(layers.layers):
            per_layer[dataset_name("text", space, k)] = pooled[:, j]
    return emb.float().cpu().numpy(), per_layer


def _prompt_sets(manifest: Manifest) -> dict[str, tuple[list[str], list[str]]]:
    """Label set -> (class names, prompt templates): the categories, then labelled columns."""
    sets: dict[str, tuple[list[str], list[str]]] = {}
    if manifest.category_names and manifest.prompt_templates:
        sets[S.PROMPT_SET_CATEGORY] = (manifest.category_names, manifest.prompt_templates)
    columns = manifest.attribute_columns()
    for key, templates in manifest.label_prompts.items():
        values = sorted({v for v in columns.get(key, []) if v})
        if values:
            sets[key] = (values, templates)
    return sets


def embed_prompts(model: EmbeddingModel, writer: StoreWriter, manifest: Manifest) -> None:
    """Zero-shot class embeddings: mean of normalised prompt embeddings per class."""
    if not model.has_text:
        return
    for label_set, (names, templates) in _prompt_sets(manifest).items():
        shown = [manifest.display_names.get(name, name) for name in names]
        texts = [t.format(name) for name in shown for t in templates]
        emb = (
            torch.cat(
                [
                    model.encode_texts(texts[i : i + 256]).float().cpu()
                    for i in range(0, len(texts), 256)
                ]
            )
            .numpy()
            .astype(np.float64)
        )
        emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
        writer.write_prompts(label_set, names, emb.reshape(len(names), len(templates), -1).mean(1))
