"""`st:NAME_OR_FOLDER`: a sentence-transformers text encoder (text side only).

The embedding is the model's own sentence embedding: the output of its full module
pipeline (transformer, pooling and, when the model has one, its Normalize module), exactly
what `SentenceTransformer.encode` returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgap.core.errors import UsageError
from mgap.engine.models.base import EmbeddingModel, LayerStates, TowerLayers
from mgap.engine.models.hf_parts import check_options, check_request, gather_layers, weights_record
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


def _batch_order(embedding: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """For each returned row, the row of the encoded (length-sorted) batch it came from:
    encode() only reorders (and may truncate) the rows, so each has an exact match."""
    batch = batch[:, : embedding.shape[1]].to(embedding.device, embedding.dtype)
    return (embedding[:, None, :] == batch[None]).all(dim=-1).int().argmax(dim=1)


class SentenceEncoder(EmbeddingModel):
    family = "st"

    def __init__(self, spec: ModelSpec, device: str, folder: Path) -> None:
        from sentence_transformers import SentenceTransformer

        super().__init__(spec, device)
        self.folder = folder
        self.model = SentenceTransformer(str(folder), device=device).eval()
        modules = _module_names(folder) or [type(m).__name__ for m in self.model]
        self.embedding_text = "sentence embedding: " + " -> ".join(modules)

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode(
            list(texts),
            batch_size=max(len(texts), 1),
            convert_to_tensor=True,
            show_progress_bar=False,
        ).float()

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._encode(texts)

    def tower_layers(self, side: str) -> TowerLayers:
        modules = list(self.model)
        if side != "text" or len(modules) < 2 or not hasattr(modules[0], "auto_model"):
            raise UsageError(
                f"{self.spec} is not a transformer followed by pooling, so it has no "
                "per-layer states (--layers)"
            )
        count = int(modules[0].auto_model.config.num_hidden_layers) + 1
        after = [type(m).__name__ for m in modules[2:]]
        pooling = (
            f"{type(modules[1]).__name__} (the model's own pooling module) applied to "
            "hidden_states[k] with the attention mask (layer 0: the embeddings)"
        )
        return TowerLayers(count, pooling, " -> ".join(after))

    def encode_texts_layers(
        self, texts: Sequence[str], layers: Sequence[int], spaces: Sequence[str]
    ) -> tuple[torch.Tensor, LayerStates]:
        """The encode() pass with hidden states on; its one batch is captured at the last
        module and put back in the caller's order (encode sorts the texts by length)."""
        check_request(self.spec, "text", layers, spaces, self.tower_layers("text"))
        modules = list(self.model)
        config = modules[0].auto_model.config
        captured: list[dict[str, Any]] = []
        hook = modules[-1].register_forward_hook(lambda _m, _i, out: captured.append(out))
        previous, config.output_hidden_states = config.output_hidden_states, True
        try:
            embedding = self._encode(texts)
        finally:
            config.output_hidden_states = previous
            hook.remove()
        features = captured[0]
        order = _batch_order(embedding, features["sentence_embedding"])
        mask = features["attention_mask"][order]

        def raw(h: torch.Tensor) -> torch.Tensor:
            pooled = modules[1]({"token_embeddings": h[order], "attention_mask": mask})
            return pooled["sentence_embedding"]

        def lens(h: torch.Tensor) -> torch.Tensor:
            out: dict[str, Any] = {"sentence_embedding": raw(h), "attention_mask": mask}
            for module in modules[2:]:
                out = module(out)
            return out["sentence_embedding"]

        states = features["all_layer_embeddings"]
        return embedding, gather_layers(states, layers, spaces, raw, lens)

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
