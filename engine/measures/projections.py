"""2-D projections of embedding points: the methods, the stratified sample and `Projection`.

Arrays in, a `Projection` out (no store, no cache: `mgap.engine.studies.projections`
projects a store and caches the result beside it):

- `project_arrays(X, *, modality=None, category=None, image_index=None, category_names=(),
  method="pca", max_points=20000, seed=0, normalize=True, **params) -> Projection`
- `Projection`: `coords` (k, 2) float32, `modality` (k,) int8 (0 image, 1 text), `category`
  (k,) int (index into `category_names`, -1 none; a caption takes its image's primary
  category), `image_index` (k,) int (the image of each point, to join images to captions),
  `category_names`, `n_shown`, `n_total`, `method`, `params`, `seconds`, `cached`, plus
  `model`, `dataset`, `sample` (each point's row among the store's images-then-captions,
  to look up its id or caption), `title()` ("model · dataset · METHOD") and
  `shown_label()` ("N of M shown") for figure titles.

Both modalities are projected together, after L2 normalisation (the modality gap is a
property of the normalised embeddings; stores with a non-Euclidean geometry keep their raw
vectors). Methods:

- `pca`: scikit-learn PCA; the randomized SVD solver from 5,000 points on.
- `umap`: umap-learn on PCA-50 with a precomputed *exact* k-NN graph (blocked matrix
  products). PCA-50 and the graph are cached separately, so changing `min_dist` or `spread`
  reruns only the layout. Parameters: n_neighbors=15, min_dist=0.1, spread=1.0, n_epochs.
- `tsne`: openTSNE on PCA-50, with its affinities built from the same cached exact k-NN
  graph (k = 3·perplexity). From 10,000 points the repulsive forces use FFT-accelerated
  interpolation (FIt-SNE, Linderman et al. 2019), below that Barnes-Hut, which is faster there
  (openTSNE's "auto"). Parameters: perplexity=30, n_iter=500.

Beyond `max_points` the fit runs on a stratified sample (by modality and category, every
non-empty stratum kept) and `n_shown < n_total` says so. UMAP's seed makes its
layout single-threaded (umap-learn's rule).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mgap.core.errors import MgapError, UsageError
from mgap.engine.measures.rows import unit_rows_

METHODS = ("pca", "umap", "tsne")
PCA_DIMS = 50
RANDOMIZED_FROM = 5000
DEFAULTS: dict[str, dict[str, object]] = {
    "pca": {},
    "umap": {"n_neighbors": 15, "min_dist": 0.1, "spread": 1.0, "n_epochs": None},
    "tsne": {"perplexity": 30.0, "n_iter": 500},
}


@dataclass
class Projection:
    """A fitted 2-D layout and what each point is; the renderers need nothing else."""

    coords: np.ndarray
    modality: np.ndarray
    category: np.ndarray
    image_index: np.ndarray
    category_names: list[str]
    n_shown: int
    n_total: int
    method: str
    params: dict
    seconds: float
    cached: bool
    model: str = ""
    dataset: str = ""
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    def shown_label(self) -> str:
        """ "N of M shown" when sampled, else "N points"."""
        if self.n_shown < self.n_total:
            return f"{self.n_shown:,} of {self.n_total:,} shown"
        return f"{self.n_total:,} points"

    def title(self) -> str:
        """ "model · dataset · METHOD", the figure title both renderers use by default."""
        method = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}.get(self.method, self.method)
        return " · ".join(part for part in (self.model, self.dataset, method) if part)


def resolve_params(method: str, params: dict[str, object]) -> dict[str, object]:
    """Defaults filled in, unknown names refused (they would silently change nothing)."""
    if method not in METHODS:
        raise UsageError(f"unknown projection method {method!r}", hint=f"use one of {METHODS}")
    unknown = sorted(set(params) - set(DEFAULTS[method]))
    if unknown:
        raise UsageError(
            f"{method} takes no parameter {', '.join(unknown)}",
            hint=f"known: {', '.join(DEFAULTS[method]) or 'none'}",
        )
    resolved = {**DEFAULTS[method], **{k: v for k, v in params.items() if v is not None}}
    for key, value in resolved.items():
        low, high = _RANGES.get(key, (None, None))
        if value is None or low is None:
            continue
        if not isinstance(value, int | float) or not (low <= float(value) <= high):
            raise UsageError(
                f"{method} parameter {key}={value!r} is outside {low:g}..{high:g}",
                hint=f"pass a {key} in that range",
            )
    if method == "umap" and float(resolved["min_dist"]) > float(resolved["spread"]):
        raise UsageError(
            f"UMAP min_dist {resolved['min_dist']} is larger than spread {resolved['spread']}",
            hint="pass --min-dist at most the spread (1.0 by default)",
        )
    return resolved


#: accepted ranges of the layout parameters (UMAP needs min_dist <= spread, checked too)
_RANGES = {
    "n_neighbors": (2, 10_000),
    "min_dist": (0.0, 10.0),
    "spread": (1e-3, 100.0),
    "n_epochs": (1, 100_000),
    "perplexity": (1.0, 10_000.0),
    "n_iter": (1, 100_000),
}


# ---- sampling ------------------------------------------------------------------------
def stratified_sample(
    modality: np.ndarray, category: np.ndarray, max_points: int, seed: int
) -> np.ndarray:
    """Sorted row indices: at most `max_points`, split over (modality, category) strata in
    proportion to their sizes (largest remainders), each non-empty stratum kept when the
    budget allows. All rows when they fit."""
    n = modality.size
    if max_points <= 0:
        raise UsageError("--max-points must be positive")
    if n <= max_points:
        return np.arange(n)
    stratum = modality.astype(np.int64) * (int(category.max(initial=-1)) + 2) + category + 1
    labels, inverse, sizes = np.unique(stratum, return_inverse=True, return_counts=True)
    quota = np.zeros(labels.size, dtype=np.int64)
    if labels.size <= max_points:
        quota += 1
    budget = max_points - int(quota.sum())
    share = (sizes - quota) * budget / max(int((sizes - quota).sum()), 1)
    quota += np.floor(share).astype(np.int64)
    left = max_points - int(quota.sum())
    if left > 0:
        room = sizes - quota
        order = np.lexsort((-room, -(share - np.floor(share))))
        order = order[room[order] > 0][:left]
        quota[order] += 1
    quota = np.minimum(quota, sizes)
    rng = np.random.default_rng(seed)
    by_stratum = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picks = [
        rng.choice(by_stratum[starts[s] : starts[s + 1]], size=int(quota[s]), replace=False)
        for s in range(labels.size)
        if quota[s]
    ]
    return np.sort(np.concatenate(picks))


# ---- the numerical steps ---------------------------------------------------------------
def pca(Z: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """Randomized SVD for large n: exact enough for plotting, far faster than a full SVD."""
    from sklearn.decomposition import PCA

    n_components = min(n_components, Z.shape[0], Z.shape[1])
    solver = "randomized" if Z.shape[0] >= RANDOMIZED_FROM else "full"
    model = PCA(n_components=n_components, svd_solver=solver, random_state=seed)
    return model.fit_transform(Z).astype(np.float32)


def reduce_dims(Z: np.ndarray, seed: int) -> np.ndarray:
    """PCA-50 before UMAP/t-SNE (denoises and makes the k-NN graph cheap)."""
    if Z.shape[1] <= PCA_DIMS:
        return Z.astype(np.float32)
    return pca(Z, PCA_DIMS, seed)


def exact_knn(Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k-NN, self first (umap-learn's layout), by blocks of rows so memory
    stays near 64 MB whatever n. Returns (indices int32, distances float32), both (n, k).

    Selection: `np.partition` finds each row's k-th smallest distance (a third of the cost
    of `argpartition`), then only the entries at or below it are sorted."""
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    n = Z.shape[0]
    k = min(k, n)
    sq = np.einsum("ij,ij->i", Z, Z)
    minus_2z = -2.0 * Z
    rows = max(1, (1 << 24) // max(n, 1))
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        # ‖a‖² is the same along a row, so rank by ‖b‖² - 2a·b and add it back at the end
        d = Z[start:stop] @ minus_2z.T
        d += sq[None, :]
        d[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        kth = np.partition(d, k - 1, axis=1)[:, k - 1]
        row, col = np.nonzero(d <= kth[:, None])
        value = d[row, col]
        order = np.lexsort((col, value, row))  # ties beyond k: the lower index wins
        first = np.searchsorted(row[order], np.arange(stop - start))
        pick = order[first[:, None] + np.arange(k)]
        indices[start:stop] = col[pick]
        d2 = value[pick] + sq[start:stop, None]
        d2[:, 0] = 0.0  # self
        distances[start:stop] = np.sqrt(np.maximum(d2, 0.0))
    return indices, distances


def umap_layout(
    reduced: np.ndarray, knn: tuple[np.ndarray, np.ndarray], params: dict, seed: int
) -> np.ndarray:
    import umap

    model = umap.UMAP(
        n_neighbors=int(params["n_neighbors"]),
        min_dist=float(params["min_dist"]),
        spread=float(params["spread"]),
        n_epochs=None if params["n_epochs"] is None else int(params["n_epochs"]),
        random_state=seed,
        n_jobs=1,
        precomputed_knn=knn,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no search index": we never transform new points
        return model.fit_transform(reduced).astype(np.float32)


def tsne_layout(
    reduced: np.ndarray, knn: tuple[np.ndarray, np.ndarray], params: dict, seed: int
) -> np.ndarray:
    from openTSNE import TSNE, affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    indices, distances = knn
    neighbors = PrecomputedNeighbors(indices[:, 1:], distances[:, 1:])  # openTSNE omits self
    affinities = affinity.PerplexityBasedNN(
        perplexity=float(params["perplexity"]), knn_index=neighbors, n_jobs=1
    )
    init = initialization.pca(reduced, random_state=seed)
    tsne = TSNE(
        n_iter=int(params["n_iter"]),
        negative_gradient_method="auto",
        random_state=seed,
        n_jobs=1,
    )
    return np.asarray(tsne.fit(affinities=affinities, initialization=init), dtype=np.float32)


def knn_size(method: str, params: dict, n: int) -> int:
    """Neighbours the layout needs, self included."""
    if method == "umap":
        return min(int(params["n_neighbors"]), n)
    return min(int(3 * float(params["perplexity"])) + 1, n)


def check_size(method: str, params: dict, n: int) -> None:
    if method == "pca" and n < 2:
        raise MgapError(f"PCA needs at least 2 points, got {n}")
    if method == "umap" and n <= int(params["n_neighbors"]):
        raise MgapError(
            f"UMAP with n_neighbors={params['n_neighbors']} needs more than that many points, "
            f"got {n}",
            hint="lower n_neighbors or use --method pca",
        )
    if method == "tsne" and n <= 3 * float(params["perplexity"]) + 1:
        raise MgapError(
            f"t-SNE with perplexity={params['perplexity']} needs more than "
            f"{int(3 * float(params['perplexity'])) + 1} points, got {n}",
            hint="use --method pca",
        )


Loader = Callable[[], dict[str, np.ndarray] | None]
Saver = Callable[[dict[str, np.ndarray]], None]


def fit_layout(
    load_points: Callable[[], np.ndarray],
    method: str,
    params: dict,
    seed: int,
    *,
    graph_cache: tuple[Loader, Saver] | None = None,
) -> np.ndarray:
    """Run one method on the points that `load_points()` returns; for UMAP/t-SNE, PCA-50 and
    the k-NN graph come from `graph_cache` when it has them (then no point is read at all)."""
    if method == "pca":
        return pca(load_points(), 2, seed)
    cached = graph_cache[0]() if graph_cache else None
    if cached is None:
        reduced = reduce_dims(load_points(), seed)
        indices, distances = exact_knn(reduced, knn_size(method, params, reduced.shape[0]))
        if graph_cache:
            graph_cache[1]({"reduced": reduced, "indices": indices, "distances": distances})
    else:
        reduced, indices, distances = cached["reduced"], cached["indices"], cached["distances"]
    layout = umap_layout if method == "umap" else tsne_layout
    return layout(reduced, (indices, distances), params, seed)


def project_arrays(
    X: np.ndarray,
    *,
    modality: np.ndarray | None = None,
    category: np.ndarray | None = None,
    image_index: np.ndarray | None = None,
    category_names: Sequence[str] = (),
    method: str = "pca",
    max_points: int = 20000,
    seed: int = 0,
    normalize: bool = True,
    **params: object,
) -> Projection:
    """Project the rows of `X` (no store, no cache); the metadata arrays default to
    "all images, no category, each point its own image"."""
    started = time.perf_counter()
    params = resolve_params(method, params)
    X = np.asarray(X)
    if X.ndim != 2:
        raise UsageError(f"expected a 2-D array of points, got shape {X.shape}")
    n = X.shape[0]
    modality = np.zeros(n, np.int8) if modality is None else np.asarray(modality, np.int8)
    category = np.full(n, -1, np.int64) if category is None else np.asarray(category, np.int64)
    image_index = np.arange(n) if image_index is None else np.asarray(image_index, np.int64)
    sample = stratified_sample(modality, category, max_points, seed)
    check_size(method, params, sample.size)

    def points() -> np.ndarray:
        Z = X[sample].astype(np.float32)
        return unit_rows_(Z) if normalize else Z

    coords = fit_layout(points, method, params, seed)
    return Projection(
        coords=coords,
        modality=modality[sample],
        category=category[sample],
        image_index=image_index[sample],
        category_names=list(category_names),
        n_shown=int(sample.size),
        n_total=n,
        method=method,
        params={**params, "seed": seed, "max_points": max_points, "normalize": normalize},
        seconds=time.perf_counter() - started,
        cached=False,
        sample=sample,
    )
