"""A store's image and text embeddings projected together to 2-D, cached beside the store.

The CLI's `mgap plot` and the TUI's scatter widget call `project_store(store, *,
method="pca"|"umap"|"tsne", max_points=20000, seed=0, use_cache=True, on_fit=None,
**params) -> Projection` (`on_fit(message)` is called just before a real fit, never on a
cache hit); `plot_report(projection, png)` is the `mgap plot --json` report. The methods,
the stratified sample and `Projection` are measures (`mgap.engine.measures.projections`).

Results are cached in the store's sidecar cache keyed by method, parameters, seed and
sample, so reopening is instant (`cached=True`); for UMAP and t-SNE, PCA-50 and the exact
k-NN graph are cached on their own, so a new `min_dist` or `spread` reruns only the layout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mgap.core.errors import MgapError
from mgap.engine.measures.projections import (
    Loader,
    Projection,
    Saver,
    check_size,
    fit_layout,
    knn_size,
    resolve_params,
    stratified_sample,
)
from mgap.engine.measures.rows import unit_rows_
from mgap.engine.reports.studies import PlotReport
from mgap.store.cache import cache_key, load_cached, save_cached
from mgap.store.reader import Store

#: bump when the fitted coordinates for the same parameters would change
CACHE_VERSION = 1


def _points_of(store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(modality, category, image_index) of every point: images first, then captions."""
    primary = store.primary_category.astype(np.int64)
    parts_m, parts_c, parts_i = [], [], []
    if store.has_images:
        parts_m.append(np.zeros(store.n_images, dtype=np.int8))
        parts_c.append(primary)
        parts_i.append(np.arange(store.n_images, dtype=np.int64))
    if store.has_texts:
        owner = store.text_image_index.astype(np.int64)
        parts_m.append(np.ones(owner.size, dtype=np.int8))
        parts_c.append(np.where(owner >= 0, primary[owner] if primary.size else -1, -1))
        parts_i.append(owner)
    if not parts_m:
        raise MgapError(f"{store.path.name} has no embeddings to project")
    return np.concatenate(parts_m), np.concatenate(parts_c), np.concatenate(parts_i)


def _read_points(store: Store, sample: np.ndarray, normalize: bool) -> np.ndarray:
    """The sampled points (indices into images, then captions), reading only their rows."""
    n_images = store.n_images if store.has_images else 0
    sides = []
    if store.has_images:
        sides.append(store.embedding_subset("image", sample[sample < n_images], np.float32))
    if store.has_texts:
        captions = sample[sample >= n_images] - n_images
        sides.append(store.embedding_subset("text", captions, np.float32))
    if len({side.shape[1] for side in sides}) > 1:
        raise MgapError(
            f"{store.path.name} has image and text embeddings of different sizes "
            f"({sides[0].shape[1]} vs {sides[1].shape[1]}): they share no space to project",
        )
    # back to the order of `sample` (images first within it is not assumed)
    order = np.argsort(np.argsort(sample >= n_images, kind="stable"), kind="stable")
    Z = np.concatenate(sides)[order]
    return unit_rows_(Z) if normalize else Z


def _graph_cache(
    store: Store, method: str, params: dict, sample_params: dict, n: int
) -> tuple[Loader, Saver]:
    """Load and save PCA-50 and the k-NN graph of this sample in the sidecar cache."""
    graph_key = cache_key("knn-graph", {**sample_params, "k": knn_size(method, params, n)})
    return (
        lambda: load_cached(store, graph_key),
        lambda arrays: save_cached(store, graph_key, arrays, sample_params),
    )


def _fit(
    store: Store,
    sample: np.ndarray,
    method: str,
    params: dict,
    sample_params: dict,
    use_cache: bool,
) -> np.ndarray:
    """Fit the layout of the sampled points (the graph from the cache when it is there)."""
    graph_cache = None
    if use_cache and method != "pca":
        graph_cache = _graph_cache(store, method, params, sample_params, sample.size)
    normalize = bool(sample_params["normalize"])
    return fit_layout(
        lambda: _read_points(store, sample, normalize),
        method,
        params,
        int(sample_params["seed"]),
        graph_cache=graph_cache,
    )


def _fit_message(method: str, shown: int, total: int) -> str:
    count = f"{shown:,} of {total:,}" if shown < total else f"{shown:,}"
    return f"fitting {method} on {count} points"


def project_store(
    store: Store,
    *,
    method: str = "pca",
    max_points: int = 20000,
    seed: int = 0,
    use_cache: bool = True,
    on_fit: Callable[[str], None] | None = None,
    **params: object,
) -> Projection:
    """Joint 2-D projection of a store (its only side for unimodal stores), cached.
    `on_fit(message)` is called only when a layout is really fitted (not on a cache hit), so
    a caller can say that this will take a while."""
    started = time.perf_counter()
    params = resolve_params(method, params)
    modality, category, image_index = _points_of(store)
    sample = stratified_sample(modality, category, max_points, seed)
    check_size(method, params, sample.size)
    normalize = store.geometry == "euclidean"
    sample_params = {
        "seed": seed,
        "max_points": max_points,
        "n_total": modality.size,
        "normalize": normalize,
        "version": CACHE_VERSION,
    }
    key = cache_key(f"projection-{method}", {**sample_params, **params})
    hit = load_cached(store, key) if use_cache else None
    cached = hit is not None and np.array_equal(hit["sample"], sample)
    if cached:
        coords = hit["coords"]
    else:
        if on_fit is not None:
            on_fit(_fit_message(method, sample.size, modality.size))
        coords = _fit(store, sample, method, params, sample_params, use_cache)
        if use_cache:
            record = {"method": method, **sample_params, **params}
            save_cached(store, key, {"coords": coords, "sample": sample}, record)
    return Projection(
        coords=np.asarray(coords, dtype=np.float32),
        modality=modality[sample],
        category=category[sample],
        image_index=image_index[sample],
        category_names=list(store.category_names),
        n_shown=int(sample.size),
        n_total=int(modality.size),
        method=method,
        params={**params, "seed": seed, "max_points": max_points, "normalize": normalize},
        seconds=time.perf_counter() - started,
        cached=cached,
        model=store.model,
        dataset=" ".join(part for part in (store.dataset, store.split) if part),
        sample=sample,
    )


def plot_report(projection: Projection, png: Path | None = None) -> PlotReport:
    """The `mgap plot --json` report: what the projection drew, and the PNG it wrote."""
    return PlotReport.build(
        method=projection.method,
        n_shown=projection.n_shown,
        n_total=projection.n_total,
        n_images=int((projection.modality == 0).sum()),
        n_texts=int((projection.modality == 1).sum()),
        params=projection.params,
        seconds=round(projection.seconds, 4),
        cached=projection.cached,
        model=projection.model,
        dataset=projection.dataset,
        png=None if png is None else str(png),
    )
