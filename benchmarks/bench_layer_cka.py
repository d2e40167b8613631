"""Layers x layers linear CKA (`mgap cka A@all B@all`): cost against its floor and against
platonic-rep's per-pair loop, on the same synthetic features (issue 23 targets).

    python benchmarks/bench_layer_cka.py [--n 5000] [--d 768] [--layers 13] [--repeats 3]
                                         [--loop-n 500] [--skip-floor] [--skip-loop]
                                         [--cpu-clock]

On a shared machine, run with one BLAS thread (OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)
and `--cpu-clock`: both sides are then timed in this process's CPU seconds, the work itself
rather than the wait for a core.

(a) mgap's path (`cka.centred_grams` for both stacks, then `cka.gram_cka_matrix`: every
    layer's centred n x n Gram built once, all pairs from one stacked product per block of
    rows) against building the 2 x `layers` float32 Gram matrices alone. Target: ≤ 1.5×.
(b) mgap's path against the approach of minyoungg/platonic-rep (`measure_alignment.py`
    loops over every layer pair and calls `metrics.AlignmentMetrics.cka` on it), re-stated
    here in our own words: for each pair, build both linear kernels from the features, then
    the biased HSIC of (K, L), (K, K) and (L, L), each as the trace of K H L H with the
    explicit centring matrix H = I − 11ᵀ/n. The pair's kernels are thus built anew for every
    pair and centred with n x n x n products. It runs at `--loop-n` rows (its cube makes
    n = 5000 impractical on a shared CPU); mgap runs on the same rows.
Every matrix must match mgap's to 1e-5 before a time is printed. Both sides of each
comparison get the same repeats and the median, interleaved (benchmarks/_harness.py).

Figures (2026-12-08, the shared 2-core development machine under load ~13, one BLAS
thread, `--cpu-clock`, median of 3):
- (a) n = 5000, d = 768, 13 x 13: mgap 13.70 s, 26 Grams alone 11.44 s: 1.20× (≤ 1.5×);
  at n = 2000: 2.37 s against 1.74 s, 1.36×.
- (b) n = 300, d = 768, 13 x 13: mgap 0.091 s, per-pair loop 2.10 s: 23.1× (goal ≥ 10×).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _harness import measure_interleaved, report

from mgap.engine.measures.cka import centred_grams, gram_cka_matrix


def features(n: int, d: int, layers: int, seed: int) -> tuple[list, list]:
    """Two stacks of float32 layers that share a drifting latent factor (as towers do)."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 32)).astype(np.float32)
    stacks = []
    for _ in range(2):
        mats = []
        for layer in range(layers):
            W = rng.normal(size=(32, d)).astype(np.float32)
            noise = rng.normal(size=(n, d)).astype(np.float32) * (1.0 - layer / (2 * layers))
            mats.append(Z @ W + noise)
        stacks.append(mats)
    return stacks[0], stacks[1]


def mgap_matrix(A: list, B: list) -> np.ndarray:
    return gram_cka_matrix(centred_grams(A), centred_grams(B), unbiased=False)


def grams_alone(A: list, B: list) -> list:
    """The floor: every layer's centred float32 Gram, nothing else."""
    out = []
    for X in A + B:
        Xc = (X - X.mean(axis=0, dtype=np.float64)).astype(np.float32)
        out.append(Xc @ Xc.T)
    return out


def per_pair_loop(A: list, B: list) -> np.ndarray:
    """platonic-rep's way, in our words: kernels anew per pair, HSIC = tr(K H L H)."""
    n = A[0].shape[0]
    H = (np.eye(n) - 1.0 / n).astype(np.float32)

    def hsic(K: np.ndarray, L: np.ndarray) -> float:
        return float(np.trace(K @ H @ L @ H, dtype=np.float64))

    M = np.zeros((len(A), len(B)))
    for i, X in enumerate(A):
        for j, Y in enumerate(B):
            K, L = X @ X.T, Y @ Y.T
            M[i, j] = hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))
    return M


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-n", type=int, default=500)
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument("--cpu-clock", action="store_true", help="time CPU seconds")
    args = parser.parse_args()
    L = args.layers
    clock = time.process_time if args.cpu_clock else time.perf_counter
    if not args.skip_floor:
        A, B = features(args.n, args.d, L, seed=0)
        ours, floor = measure_interleaved(
            [lambda: mgap_matrix(A, B), lambda: grams_alone(A, B)],
            repeats=args.repeats,
            clock=clock,
        )
        ratio = report(
            f"(a) linear CKA {L}x{L}, n={args.n}, d={args.d}", ours, floor, f"{2 * L} Grams alone"
        )
        print(f"    mgap / Grams alone = {1 / ratio:.2f}× (target ≤ 1.5×)", flush=True)
        del A, B, ours, floor
    if not args.skip_loop:
        A, B = features(args.loop_n, args.d, L, seed=1)
        ours, loop = measure_interleaved(
            [lambda: mgap_matrix(A, B), lambda: per_pair_loop(A, B)],
            repeats=args.repeats,
            clock=clock,
        )
        np.testing.assert_allclose(ours.value, loop.value, rtol=1e-5, atol=1e-6)
        ratio = report(
            f"(b) linear CKA {L}x{L}, n={args.loop_n}, d={args.d}", ours, loop, "per-pair loop"
        )
        print(f"    per-pair loop / mgap = {ratio:.1f}× (goal ≥ 10×)", flush=True)


if __name__ == "__main__":
    main()
