"""`mgap attention STORE`: recompute attention maps for a seeded sample of a store's images.

The store records the model spec, the dataset root and each image's path, so the maps come
from the same model and the same files as the embeddings. The report holds every map
(rounded to 6 decimals) with its grid, so `mgap attention --json` is all the TUI needs to
draw them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.attention.entropy import entropy, spread, uniform_entropy
from mgap.engine.attention.maps import attention_maps, grid_coverage
from mgap.engine.models import load_model, resolve_device
from mgap.engine.models.base import EmbeddingModel
from mgap.engine.reports.studies import (
    AttentionImage,
    AttentionReport,
    AttentionSample,
    SkippedImage,
    Spread,
)
from mgap.engine.store_images import image_root, open_images
from mgap.engine.studies.pairs import store_header
from mgap.store import open_store
from mgap.store.reader import Store

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


def _by_category(images: list[AttentionImage]) -> dict[str, Spread]:
    groups: dict[str, list[float]] = {}
    for image in images:
        groups.setdefault(image.category or "(none)", []).append(image.entropy)
    return {name: Spread.build(**spread(values)) for name, values in sorted(groups.items())}


@dataclass
class _Maps:
    """What the batches gave: the maps read, the images skipped, and the query and layer."""

    images: list[AttentionImage] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)
    query: str = ""
    layer: int = 0
    n_layers: int = 0


def _image(image_id: str, path: Path, category: str, grid: np.ndarray) -> AttentionImage:
    return AttentionImage.build(
        id=image_id,
        path=str(path),
        category=category,
        grid=list(grid.shape),
        patches=int(grid.size),
        entropy=entropy(grid),
        uniform_entropy=uniform_entropy(grid.size),
        map=np.round(grid, MAP_DECIMALS).tolist(),
    )


def _run_batches(
    store: Store,
    request: AttentionRequest,
    adapter: EmbeddingModel,
    progress: Callable[[int, int], None] | None,
) -> _Maps:
    """The maps of the sampled images, `request.batch_size` at a time."""
    from torch.utils.data._utils.collate import default_collate  # torch: only when maps run

    root = image_root(store, request.data_root)
    rows = _sample(store.n_images, request.images, request.seed)
    ids = store.image_ids[rows]
    paths = [str(p) for p in store.image_paths[rows]]
    categories = store.primary_names()[rows] if store.category_names else [""] * len(rows)
    preprocess = adapter.image_preprocess()
    out = _Maps()
    for start in range(0, len(rows), request.batch_size):
        chunk = range(start, min(start + request.batch_size, len(rows)))
        pil, reasons = open_images(root, [paths[i] for i in chunk])
        ok = [i for i, reason in zip(chunk, reasons, strict=True) if not reason]
        out.skipped += [
            SkippedImage.build(id=str(ids[i]), path=paths[i], reason=reason)
            for i, reason in zip(chunk, reasons, strict=True)
            if reason
        ]
        if ok:
            batch = default_collate([preprocess(pil[i - start]) for i in ok])
            result = attention_maps(adapter, batch, request.layer)
            out.query, out.layer, out.n_layers = result.query, result.layer, result.n_layers
            for i, grid in zip(ok, result.maps, strict=True):
                out.images.append(_image(str(ids[i]), root / paths[i], str(categories[i]), grid))
        if progress is not None:
            progress(chunk.stop, len(rows))
    if not out.images:
        raise StoreError(
            f"none of the {len(rows)} sampled images of {store.path.name} could be read "
            f"under {root} (first: {out.skipped[0].reason if out.skipped else 'none'})",
            hint="pass --data-root with the folder the store was extracted from",
        )
    return out


def attention_report(
    request: AttentionRequest, progress: Callable[[int, int], None] | None = None
) -> AttentionReport:
    """The `mgap attention` report: every sampled image's map and entropy, and their spread
    overall and per primary category."""
    store = open_store(request.store)
    if not store.has_images:
        raise StoreError(f"{store.path.name} has no image side; attention maps need images")
    image_root(store, request.data_root)  # a missing image folder fails before the model loads
    adapter = load_model(store.model, resolve_device(request.device), **request.model_options)
    maps = _run_batches(store, request, adapter, progress)
    images = maps.images
    grids = {tuple(image.grid) for image in images}
    return AttentionReport.build(
        **store_header(store),
        layer=maps.layer,
        n_layers=maps.n_layers,
        query=maps.query,
        coverage=grid_coverage(adapter),
        entropy_definition=ENTROPY_DEFINITION,
        sample=AttentionSample.build(
            requested=request.images, seed=request.seed, of=store.n_images
        ),
        n_images=len(images),
        grid=list(next(iter(grids))) if len(grids) == 1 else None,
        entropy=Spread.build(**spread([image.entropy for image in images])),
        uniform_entropy=Spread.build(**spread([image.uniform_entropy for image in images])),
        relative_entropy=Spread.build(
            **spread([i.entropy / i.uniform_entropy for i in images if i.patches > 1])
        ),
        by_category=_by_category(images),
        images=images,
        skipped=maps.skipped,
    )
