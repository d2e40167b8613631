"""Time mgap's CKA against common peer formulations on the same data in the same process.

    python benchmarks/bench_cka.py [--n 5000] [--d 768] [--skip-peer]

Linear: feature-space CKA vs (a) the peer formulation with an explicit n x n centring
matrix H, HSIC = tr(KHLH) (yuanli2333/CKA-Centered-Kernel-Alignment, also used by
0-shot-llm-vision), and (b) Kornblith et al.'s Gram-based numpy version (colab
`center_gram` + `cka`). RBF: mgap's kernels built once with centred HSIC from row sums vs
the peer `kernel_CKA`, which rebuilds both kernels and centring matrices in every HSIC call.
Asserts equal values (1e-6) and prints time ratios.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from mgap.engine.analysis.cka import linear_cka, rbf_cka


# ---- peer: explicit centring matrix (yuanli2333 CKA.py) -------------------------------------
def centering(K):
    n = K.shape[0]
    H = np.eye(n) - np.ones([n, n]) / n
    return np.dot(np.dot(H, K), H)


def rbf(X, sigma=None):
    GX = np.dot(X, X.T)
    KX = np.diag(GX) - GX + (np.diag(GX) - GX).T
    if sigma is None:
        mdist = np.median(KX[KX != 0])
        sigma = math.sqrt(mdist)
    KX *= -0.5 / (sigma * sigma)
    return np.exp(KX)


def kernel_hsic(X, Y, sigma):
    return np.sum(centering(rbf(X, sigma)) * centering(rbf(Y, sigma)))


def linear_hsic(X, Y):
    return np.sum(centering(X @ X.T) * centering(Y @ Y.T))


def peer_linear_cka(X, Y):
    return linear_hsic(X, Y) / (np.sqrt(linear_hsic(X, X)) * np.sqrt(linear_hsic(Y, Y)))


def peer_kernel_cka(X, Y, sigma=None):
    return kernel_hsic(X, Y, sigma) / np.sqrt(kernel_hsic(X, X, sigma) * kernel_hsic(Y, Y, sigma))


# ---- Kornblith et al. colab: Gram matrices, centred in place --------------------------------
def center_gram(gram):
    gram = gram.copy()
    means = np.mean(gram, 0, dtype=np.float64)
    means -= np.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
    return gram


def gram_cka(X, Y):
    gx, gy = center_gram(X @ X.T), center_gram(Y @ Y.T)
    return gx.ravel().dot(gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def timed(fn, *args, repeat=1):
    best, value = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, float(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--skip-peer", action="store_true", help="skip the O(n³) peers")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, d = args.n, args.d
    X = rng.normal(size=(n, d)) + 0.5  # an offset, like real embeddings
    Y = np.tanh(X @ rng.normal(size=(d, d)) / np.sqrt(d)) + 0.5 * rng.normal(size=(n, d))
    print(f"n = {n}, d = {d}")

    t_mgap, v_mgap = timed(linear_cka, X, Y, repeat=3)
    t_gram, v_gram = timed(gram_cka, X, Y, repeat=2)
    assert abs(v_mgap - v_gram) < 1e-6, (v_mgap, v_gram)
    print(f"linear  mgap {t_mgap:8.3f} s   value {v_mgap:.10f}")
    print(f"linear  gram {t_gram:8.3f} s   value {v_gram:.10f}   ratio {t_gram / t_mgap:7.1f}x")
    if not args.skip_peer:
        t_peer, v_peer = timed(peer_linear_cka, X, Y)
        assert abs(v_mgap - v_peer) < 1e-6, (v_mgap, v_peer)
        print(f"linear  H    {t_peer:8.3f} s   value {v_peer:.10f}   ratio {t_peer / t_mgap:7.1f}x")

    t_rbf, v_rbf = timed(rbf_cka, X, Y, repeat=2)
    print(f"rbf     mgap {t_rbf:8.3f} s   value {v_rbf:.10f}")
    if not args.skip_peer:
        t_peer, v_peer = timed(peer_kernel_cka, X, Y)
        assert abs(v_rbf - v_peer) < 1e-6, (v_rbf, v_peer)
        print(f"rbf     peer {t_peer:8.3f} s   value {v_peer:.10f}   ratio {t_peer / t_rbf:7.1f}x")


if __name__ == "__main__":
    main()
