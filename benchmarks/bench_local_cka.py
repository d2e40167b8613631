"""Time local-CKA retrieval and seeded-QAP restarts on the same data in the same process.

    python benchmarks/bench_local_cka.py [--base 320] [--queries 30] [--d 512]
                                         [--qap-query 1000] [--restarts 0 (= every core)]

Local CKA: mgap's rank-one border updates of cached base statistics vs the straightforward
peer loop that rebuilds the (b+1) x (b+1) kernels of every (query, candidate) pair and
centres them (Kornblith et al.'s `center_gram`); same scores to 1e-5, linear and RBF.
QAP: the same restarts (same seeds, same result) run serially and in one process per core.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _harness import measure, report
from bench_cka import center_gram  # the Kornblith et al. baseline, shared with bench_cka

from mgap.engine.measures.cka import median_sigma, squared_distances
from mgap.engine.measures.local_cka import local_cka_scores
from mgap.engine.measures.matching import qap_kernel, seeded_qap


def gram_cka(gx, gy):
    gx, gy = center_gram(gx), center_gram(gy)
    return gx.ravel().dot(gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def kernel(Z, name, sigma):
    if name == "linear":
        return Z @ Z.T
    sq = np.einsum("ij,ij->i", Z, Z)
    D = np.maximum(sq[:, None] + sq[None, :] - 2.0 * Z @ Z.T, 0.0)
    return np.exp(-D / (2 * sigma**2))


def peer_scores(Xb, Yb, Xq, Yc, name):
    sx = median_sigma(squared_distances(Xb)) if name == "rbf" else None
    sy = median_sigma(squared_distances(Yb)) if name == "rbf" else None
    out = np.empty((len(Xq), len(Yc)))
    for i, x in enumerate(Xq):
        for j, y in enumerate(Yc):
            K = kernel(np.vstack([Xb, x]), name, sx)
            L = kernel(np.vstack([Yb, y]), name, sy)
            out[i, j] = gram_cka(K, L)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=int, default=320)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--qap-query", type=int, default=1000)
    parser.add_argument("--restarts", type=int, default=0, help="0: one per core")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (median)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    b, q, d = args.base, args.queries, args.d
    n = b + max(q, args.qap_query)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.tanh(X @ rng.normal(size=(d, d))) + 0.5 * rng.normal(size=(n, d))
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    Xb, Yb, Xq, Yq = X[:b], Y[:b], X[b : b + q], Y[b : b + q]
    print(f"local CKA: base {b}, {q} queries x {q} candidates, d = {d}")
    for name in ("linear", "rbf"):
        fast = measure(lambda n=name: local_cka_scores(Xb, Yb, Xq, Yq, n), args.repeats)
        peer = measure(lambda n=name: peer_scores(Xb, Yb, Xq, Yq, n), args.repeats)
        err = float(np.abs(fast.value - peer.value).max())
        assert err < 1e-5, err
        report(f"  local CKA {name} (max |diff| {err:.1e})", fast, peer, "rebuild per pair")

    cores = os.cpu_count() or 1
    restarts = args.restarts or cores
    qq = args.qap_query
    shuffle = rng.permutation(qq)
    A = qap_kernel(np.vstack([Xb, X[b : b + qq]]))
    B = qap_kernel(np.vstack([Yb, Y[b : b + qq][shuffle]]))
    print(f"seeded QAP: {b} seeds + {qq} queries, {restarts} restarts, {cores} cores")
    serial = measure(
        lambda: seeded_qap(A, B, b, restarts=restarts, seed=0, workers=1), args.repeats
    )
    parallel = measure(lambda: seeded_qap(A, B, b, restarts=restarts, seed=0), args.repeats)
    (col_s, fun_s), (col_p, fun_p) = serial.value, parallel.value
    assert fun_s == fun_p and np.array_equal(col_s, col_p)
    accuracy = float(np.mean(col_p[b:] == b + np.argsort(shuffle)))
    report("  seeded QAP restarts in parallel", parallel, serial, "serial")
    print(f"  best objective {fun_p:.4g}, accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
