"""`st:NAME_OR_FOLDER`: a sentence-transformers text encoder (text side only).

The embedding is the model's own sentence embedding: the output of its full module
pipeline (transformer, pooling and, when the model has one, its Normalize module), exactly
what `SentenceTransformer.encode` returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mgap.engine.models.base import EmbeddingModel
from mgap.engine.models.hf_parts import check_options, weights_record
from mgap.engine.models.hub import looks_like_path, resolve_pretrained
from mgap.engine.specs import ModelSpec

if TYPE_CHECKING:
    import torch


def hub_name(name: str) -> str:
    """Bare names mean the sentence-transformers organisation, as in the library itself."""
    if "/" in name or looks_like_path(name) or Path(name).expanduser().is_dir():
        return name
    return f"sentence-transformers/{name}"


def _module_names(folder: Path) -> list[str]:
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]


class SentenceEncoder(EmbeddingModel):
    family = "st"

    def __init__(self, spec: ModelSpec, device: str, folder: Path) -> None:
        from sentence_transformers import SentenceTransformer

        super().__init__(spec, device)
        self.folder = folder
        self.model = SentenceTransformer(str(folder), device=device).eval()
        modules = _module_names(folder) or [type(m).__name__ for m in self.model]
        self.embedding_text = "sentence embedding: " + " -> ".join(modules)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode(
            list(texts),
            batch_size=max(len(texts), 1),
            convert_to_tensor=True,
            show_progress_bar=False,
        ).float()

    def provenance(self) -> dict[str, object]:
        return {
            "weights": weights_record(self.spec, self.folder, "SentenceTransformer"),
            "preprocessing": {
                "text": {
                    "tokenizer": type(self.model.tokenizer).__name__,
                    "max_seq_length": self.model.max_seq_length,
                    "padding": "longest",
                    "truncation": True,
                }
            },
        }


def load(spec: ModelSpec, device: str, **options: object) -> SentenceEncoder:
    check_options(spec, options, {})
    folder = resolve_pretrained(
        hub_name(spec.id), what=f"sentence encoder {spec}", revision=spec.tag
    )
    return SentenceEncoder(spec, device, folder)
