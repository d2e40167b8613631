"""UMAP of 30,000 × 512 embeddings: mgap's PCA-50 + exact k-NN path against UMAP on PCA-50.

Run: python benchmarks/bench_umap.py [--quick] [--n 30000] [--dim 512] [--repeats 1]

Data: two modalities of a synthetic "CLIP-like" store (clustered, offset clouds,
L2-normalised), written with store_from_arrays into a temporary folder. Baseline: what a
competent user runs, scikit-learn's `PCA(50)` on the normalised points, then
`umap.UMAP(random_state=0)` (NNDescent inside). mgap, timed the same way (median of
`--repeats` runs each, benchmarks/_harness.py):
- uncached: `project_store(method="umap", use_cache=False)` (reads the store, PCA-50,
  exact blocked k-NN, layout);
- warm: the same call with the cache filled (a cache hit);
- after a parameter change (min_dist 0.1 -> 0.5): PCA-50 and k-NN come from the cache.
numba's JIT compile is paid once beforehand on a small fit so that neither side is charged.
Checks: warm == cold exactly; the k-NN graph equals scikit-learn's brute force on 500 rows.
Quality: the share of each point's 10 nearest neighbours (in 512-d) kept among its 10
nearest in 2-D, on 2,000 points, for both layouts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _harness import measure, report

from mgap.engine.measures.projections import exact_knn, reduce_dims
from mgap.engine.measures.rows import unit_rows
from mgap.engine.studies.projections import project_store
from mgap.store import open_store
from mgap.store.build import store_from_arrays


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    half = n // 2
    centres = rng.normal(size=(60, dim))
    labels = rng.integers(0, 60, size=half)
    gap = rng.normal(size=dim) * 0.8
    images = centres[labels] + 0.6 * rng.normal(size=(half, dim))
    texts = centres[labels] + 0.6 * rng.normal(size=(half, dim)) + gap
    return images.astype(np.float32), texts.astype(np.float32)


def neighbour_kept(high: np.ndarray, low: np.ndarray, rows: np.ndarray, k: int = 10) -> float:
    def knn(Z: np.ndarray) -> np.ndarray:
        Z = Z.astype(np.float64)
        sq = (Z**2).sum(1)
        d = sq[rows, None] - 2 * Z[rows] @ Z.T + sq[None, :]
        d[np.arange(rows.size), rows] = np.inf
        return np.argpartition(d, k, axis=1)[:, :k]

    a, b = knn(high), knn(low)
    return float(np.mean([np.intersect1d(x, y).size / k for x, y in zip(a, b, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="6,000 points instead")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (median)")
    args = parser.parse_args()
    n = 6_000 if args.quick else args.n
    import umap
    from sklearn.neighbors import NearestNeighbors

    images, texts = synthetic(n, args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        path = store_from_arrays(
            Path(tmp) / "bench.h5",
            image_embeddings=images,
            text_embeddings=texts,
            provenance={"model": "synthetic", "dataset": "bench"},
        )
        start = time.perf_counter()
        small = np.random.default_rng(1).normal(size=(300, 20)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP(random_state=0, n_jobs=1).fit_transform(small)
            umap.UMAP(random_state=0, n_jobs=1, force_approximation_algorithm=True).fit_transform(
                small
            )
        print(f"{n:,} x {args.dim} points; numba JIT warm-up {time.perf_counter() - start:.1f} s")

        points = unit_rows(np.concatenate([images, texts]), np.float32)
        r = args.repeats

        def baseline():
            from sklearn.decomposition import PCA

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reduced = PCA(50, random_state=0).fit_transform(points)
                return umap.UMAP(random_state=0).fit_transform(reduced)

        def mgap(**params):
            return project_store(open_store(path), method="umap", max_points=n, **params)

        theirs = measure(baseline, repeats=r)
        cold = measure(lambda: mgap(use_cache=False), repeats=r)
        mgap()  # fill the cache
        warm = measure(mgap, repeats=r)
        changed = measure(lambda: mgap(min_dist=0.5), repeats=r)
        plain = theirs.value
        assert not cold.value.cached and warm.value.cached
        assert np.array_equal(cold.value.coords, warm.value.coords), "cached layout differs"

        reduced = reduce_dims(points, 0)
        indices, _ = exact_knn(reduced, 15)
        rows = np.random.default_rng(2).choice(n, 500, replace=False)
        _, expected = NearestNeighbors(n_neighbors=15).fit(reduced).kneighbors(reduced[rows])
        same = np.mean(np.sort(indices[rows], 1) == np.sort(expected, 1))
        assert same > 0.999, f"exact k-NN disagrees with scikit-learn on {1 - same:.2%}"

        sample = np.random.default_rng(3).choice(n, 2000, replace=False)
        kept_plain = neighbour_kept(points, plain, sample)
        kept_mgap = neighbour_kept(points, cold.value.coords, sample)

    name = "PCA-50 + umap.UMAP"
    report("UMAP uncached (PCA-50 + exact k-NN)", cold, theirs, name)
    report("UMAP cache hit", warm, theirs, name)
    report("UMAP after min_dist 0.1 -> 0.5 (k-NN from the cache)", changed, theirs, name)
    print(f"  k-NN graph == scikit-learn brute force on 500 rows: {same:.4f}")
    print(f"  10-NN kept in 2-D: {name} {kept_plain:.3f}, mgap {kept_mgap:.3f}")


if __name__ == "__main__":
    main()
