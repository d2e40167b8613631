"""`mgap attention STORE`: recompute attention maps for a seeded sample of a store's images.

The store records the model spec, the dataset root and each image's path, so the maps come
from the same model and the same files as the embeddings. The JSON holds every map (rounded
to 6 decimals) with its grid, so `mgap attention --json` is all the TUI needs to draw them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.attention.entropy import entropy, spread, uniform_entropy
from mgap.engine.store_images import image_root, open_images

ENTROPY_DEFINITION = (
    "H = -sum p log p (natural log, nats) over the patch distribution: the query's attention "
    "row restricted to the patch tokens, averaged over heads, renormalised to sum 1; "
    "a uniform map has H = log(#patches)"
)
MAP_DECIMALS = 6


@dataclass(frozen=True)
class AttentionRequest:
    store: Path
    images: int = 16
    layer: int = -1
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    data_root: Path | None = None
    #: options the store was extracted with (`--model-option`), e.g. precision=float16
    model_options: dict[str, str] = field(default_factory=dict)


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    """k distinct rows (all when k ≥ n), seeded, in store order."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _by_category(rows: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(row["category"] or "(none)", []).append(row["entropy"])
    return {name: spread(values) for name, values in sorted(groups.items())}


def attention_report(
    request: AttentionRequest, progress: Callable[[int, int], None] | None = None
) -> dict:
    """The `mgap attention --json` document."""
    from mgap.engine.attention.maps import attention_maps, grid_coverage
    from mgap.engine.models import load_model, resolve_device
    from mgap.engine.studies.pairs import store_header
    from mgap.store import open_store

    store = open_store(request.store)
    if not store.has_images:
        raise StoreError(f"{store.path.name} has no image side; attention maps need images")
    root = image_root(store, request.data_root)
    rows = _sample(store.n_images, request.images, request.seed)
    ids = store.image_ids[rows]
    paths = [str(p) for p in store.image_paths[rows]]
    categories = store.primary_names()[rows] if store.category_names else [""] * len(rows)
    from torch.utils.data._utils.collate import default_collate  # after the checks: fail fast

    device = resolve_device(request.device)
    adapter = load_model(store.model, device, **request.model_options)
    preprocess = adapter.image_preprocess()

    images, skipped, query, layer, n_layers = [], [], "", 0, 0
    for start in range(0, len(rows), request.batch_size):
        chunk = range(start, min(start + request.batch_size, len(rows)))
        pil, reasons = open_images(root, [paths[i] for i in chunk])
        ok = [i for i, reason in zip(chunk, reasons, strict=True) if not reason]
        skipped += [
            {"id": str(ids[i]), "path": paths[i], "reason": reason}
            for i, reason in zip(chunk, reasons, strict=True)
            if reason
        ]
        if ok:
            batch = default_collate([preprocess(pil[i - start]) for i in ok])
            result = attention_maps(adapter, batch, request.layer)
            query, layer, n_layers = result.query, result.layer, result.n_layers
            for i, grid in zip(ok, result.maps, strict=True):
                images.append(
                    {
                        "id": str(ids[i]),
                        "path": str(root / paths[i]),
                        "category": str(categories[i]),
                        "grid": list(grid.shape),
                        "patches": int(grid.size),
                        "entropy": entropy(grid),
                        "uniform_entropy": uniform_entropy(grid.size),
                        "map": np.round(grid, MAP_DECIMALS).tolist(),
                    }
                )
        if progress is not None:
            progress(chunk.stop, len(rows))
    if not images:
        raise StoreError(
            f"none of the {len(rows)} sampled images of {store.path.name} could be read "
            f"under {root} (first: {skipped[0]['reason'] if skipped else 'none'})",
            hint="pass --data-root with the folder the store was extracted from",
        )
    grids = {tuple(row["grid"]) for row in images}
    return {
        **store_header(store),
        "layer": layer,
        "n_layers": n_layers,
        "query": query,
        "coverage": grid_coverage(adapter),
        "entropy_definition": ENTROPY_DEFINITION,
        "sample": {"requested": request.images, "seed": request.seed, "of": store.n_images},
        "n_images": len(images),
        "grid": list(next(iter(grids))) if len(grids) == 1 else None,
        "entropy": spread([row["entropy"] for row in images]),
        "uniform_entropy": spread([row["uniform_entropy"] for row in images]),
        "relative_entropy": spread(
            [row["entropy"] / row["uniform_entropy"] for row in images if row["patches"] > 1]
        ),
        "by_category": _by_category(images),
        "images": images,
        "skipped": skipped,
    }
