"""`mgap cka --permutations`: the null from Grams built once against a single CKA, against
the previous re-index, and against rebuilding both Grams for every permutation.

    python benchmarks/bench_permutations.py [--n 5000] [--d 512] [--perms 1000]
        [--timed-perms 1000] [--naive-perms 5] [--repeats 1] [--cpu-clock]

Sides, each timed on the same seeded float32 pair (benchmarks/_harness.py, interleaved,
same repeats and median):
- "single CKA": one biased linear CKA of the pair (`linear_cka`, what `mgap cka` runs);
- "mgap null": both centred n x n Grams built once, then `--timed-perms` seeded
  permutations that only re-index the second Gram (`GramNull`, `permutation_null`);
- "previous re-index": the same Grams, each permutation gathered with fancy indexing
  `L[p[rows]][:, p]` and summed by einsum (the implementation before the fused kernel of
  `mgap.engine.compute.permuted`), over `--naive-perms` of them;
- "naive": for each permutation, both Grams rebuilt from the rows, centred by their means,
  and the three HSICs, over `--naive-perms` permutations.
Every permutation costs the same, so each side timed over fewer than `--perms`
permutations is scaled linearly to `--perms`, and the line says so (the null's Gram
build, timed as its own side, is counted once, not scaled). Before any time is
printed, the three ways of computing a permuted CKA must agree to 1e-8 and the null's
observed value must equal the single CKA. `--cpu-clock` times process CPU seconds (all
threads) instead of wall-clock, for a loaded machine. Target (issue 24): the null <= 3x
a single CKA at n = 5,000.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _harness import measure_interleaved

from mgap.engine.measures.cka import linear_cka
from mgap.engine.measures.permutation import GramNull, linear_gram, permutation_null


def _centred(G: np.ndarray) -> np.ndarray:
    G -= G.mean(axis=0, keepdims=True)
    G -= G.mean(axis=1, keepdims=True)
    return G


def naive_cka(X: np.ndarray, Yp: np.ndarray) -> float:
    """Both Grams rebuilt from the rows and centred by their row and column means (Kornblith
    et al.'s `center_gram`, without an n x n H product), then the three HSICs."""
    K, L = _centred(X @ X.T), _centred(Yp @ Yp.T)
    return float(np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)))


#: rows of L[p][:, p] the previous re-index gathered per step
ROWS = 256


def fancy_cka(grams: GramNull, p: np.ndarray) -> float:
    """The previous re-index: ROWS rows of L[p][:, p] at a time by fancy indexing."""
    total = 0.0
    for lo in range(0, p.size, ROWS):
        rows = grams.L[p[lo : lo + ROWS]][:, p]
        total += float(np.einsum("ij,ij->", grams.K[lo : lo + ROWS], rows))
    return total / grams.norm


def _pair(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(n, 16))
    X = (Z @ rng.normal(size=(16, d)) + rng.normal(size=(n, d))).astype(np.float32)
    Y = (Z @ rng.normal(size=(16, d)) + rng.normal(size=(n, d))).astype(np.float32)
    return X, Y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("--n", 5000), ("--d", 512), ("--perms", 1000), ("--repeats", 1)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--timed-perms", type=int, default=None)
    parser.add_argument("--naive-perms", type=int, default=5)
    parser.add_argument("--cpu-clock", action="store_true")
    args = parser.parse_args()
    timed = args.timed_perms or args.perms
    X, Y = _pair(args.n, args.d)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    grams = GramNull(linear_gram(X), linear_gram(Y))
    orders = np.random.default_rng(1).permuted(
        np.tile(np.arange(args.n), (args.naive_perms, 1)), axis=1
    )
    grams.cka(orders[0])  # numba compiles the fused kernel once (cached on disk) before timing

    def null() -> dict:
        built = GramNull(linear_gram(X), linear_gram(Y))
        return permutation_null(built.cka, args.n, timed, 0)

    sides = [
        lambda: linear_cka(X, Y),
        lambda: GramNull(linear_gram(X), linear_gram(Y)),
        null,
        lambda: [fancy_cka(grams, p) for p in orders],
        lambda: [naive_cka(X64, Y64[p]) for p in orders],
    ]
    clock = time.process_time if args.cpu_clock else time.perf_counter
    single_t, build_t, null_t, fancy_t, naive_t = measure_interleaved(
        sides, repeats=args.repeats, clock=clock
    )
    reindexed = [grams.cka(p) for p in orders]
    np.testing.assert_allclose(reindexed, naive_t.value, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(reindexed, fancy_t.value, rtol=1e-12, atol=1e-15)
    assert abs(null_t.value["observed"] - single_t.value) < 1e-5
    build = build_t.median
    scaled = build + max(null_t.median - build, 0.0) / timed * args.perms
    _print(args, timed, single_t.median, scaled, fancy_t.median, naive_t.median)


def _print(args, timed: int, single: float, scaled: float, fancy: float, naive: float) -> None:
    fancy_scaled = fancy / args.naive_perms * args.perms
    naive_scaled = naive / args.naive_perms * args.perms
    note = "" if timed == args.perms else f" (scaled from {timed} permutations)"
    clock = "CPU" if args.cpu_clock else "wall"
    print(
        f"cka --permutations {args.perms}, n = {args.n}, d = {args.d}, {clock} seconds: "
        f"single CKA {single:.3f} s · mgap null {scaled:.1f} s{note} "
        f"({scaled / single:.1f}x the single CKA; target <= 3x) · "
        f"previous re-index {fancy_scaled:.1f} s (mgap {fancy_scaled / scaled:.2f}x faster) · "
        f"naive rebuild {naive_scaled:.1f} s (mgap {naive_scaled / scaled:.1f}x faster); "
        f"previous and naive scaled from {args.naive_perms} permutations",
        flush=True,
    )


if __name__ == "__main__":
    main()
