"""`mgap cka --permutations`: the null from Grams built once against a single CKA and
against rebuilding both Grams for every permutation.

    python benchmarks/bench_permutations.py [--n 5000] [--d 512] [--perms 1000]
        [--naive-perms 5]

Sides, each timed on the same seeded float32 pair (benchmarks/_harness.py, interleaved):
- "single CKA": one biased linear CKA of the pair (`linear_cka`, what `mgap cka` runs);
- "mgap null": both centred n x n Grams built once, then `--perms` permutations that only
  re-index the second Gram (`GramNull`, `permutation_null`);
- "naive": for each permutation, both Grams rebuilt from the rows, centred by their means,
  and the three HSICs; timed over `--naive-perms` permutations and scaled linearly to `--perms`
  (its cost per permutation is constant), so the printed ratio says it was scaled.
The naive and re-indexed CKA must agree to 1e-8 on those permutations before any time is
printed. Target (issue 24): the null <= 3x a single CKA at n = 5,000.
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import measure_interleaved

from mgap.engine.measures.permutation import GramNull, linear_gram, permutation_null
from mgap.engine.studies.cka import linear_cka


def _centred(G: np.ndarray) -> np.ndarray:
    G -= G.mean(axis=0, keepdims=True)
    G -= G.mean(axis=1, keepdims=True)
    return G


def naive_cka(X: np.ndarray, Yp: np.ndarray) -> float:
    """Both Grams rebuilt from the rows and centred by their row and column means (Kornblith
    et al.'s `center_gram`, without an n x n H product), then the three HSICs."""
    K, L = _centred(X @ X.T), _centred(Yp @ Yp.T)
    return float(np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--perms", type=int, default=1000)
    parser.add_argument("--naive-perms", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(args.n, 16))
    X = (Z @ rng.normal(size=(16, args.d)) + rng.normal(size=(args.n, args.d))).astype(np.float32)
    Y = (Z @ rng.normal(size=(16, args.d)) + rng.normal(size=(args.n, args.d))).astype(np.float32)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    orders = np.random.default_rng(1).permuted(
        np.tile(np.arange(args.n), (args.naive_perms, 1)), axis=1
    )

    def null() -> dict:
        grams = GramNull(linear_gram(X), linear_gram(Y))
        return {**permutation_null(grams.cka, args.n, args.perms, 0), "grams": grams}

    def naive() -> list[float]:
        return [naive_cka(X64, Y64[p]) for p in orders]

    single_t, null_t, naive_t = measure_interleaved(
        [lambda: linear_cka(X, Y), null, naive], repeats=1
    )
    reindexed = [null_t.value["grams"].cka(p) for p in orders]
    np.testing.assert_allclose(reindexed, naive_t.value, rtol=1e-8, atol=1e-12)
    assert abs(null_t.value["observed"] - single_t.value) < 1e-5
    naive_scaled = naive_t.median / args.naive_perms * args.perms
    print(
        f"cka --permutations {args.perms}, n = {args.n}, d = {args.d}: "
        f"single CKA {single_t.median:.3f} s · mgap null {null_t.median:.2f} s "
        f"({null_t.median / single_t.median:.1f}x the single CKA; target <= 3x) · "
        f"naive rebuild {naive_scaled:.1f} s (scaled from {args.naive_perms} permutations; "
        f"mgap {naive_scaled / null_t.median:.1f}x faster)",
        flush=True,
    )


if __name__ == "__main__":
    main()
