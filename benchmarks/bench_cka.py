"""CKA, mutual k-NN and CKNNA: mgap against the peers' own formulations, same data, same process.

    python benchmarks/bench_cka.py [--n 3000] [--d 512] [--k 10] [--repeats 3] [--skip-dense]

Baselines (each labelled in the output):
- linear CKA, "mayug linear_CKA": the CKA class of mayug/0-shot-llm-vision (Maniparambil et
  al., CVPR 2024; the same class as yuanli2333/CKA-Centered-Kernel-Alignment) re-written
  here with its structure kept: n×n Gram matrices centred with an explicit centring matrix
  H, HSIC = Σ (HKH) ∘ (HLH), computed three times (XY, XX, YY).
- linear CKA, "Kornblith Gram": Kornblith et al.'s colab (`center_gram` + `cka`).
- RBF CKA, "mayug kernel_CKA": the same class's kernel_CKA, which rebuilds both RBF kernels
  and their centring in each of its three HSIC calls.
- RBF CKA, "kernels once": what a competent user writes instead: each RBF kernel built
  once, centred once by row and column means, then the three inner products.
- mutual k-NN and CKNNA, "platonic-rep": the algorithm of minyoungg/platonic-rep's
  `AlignmentMetrics.mutual_knn` and `.cknna` (Huh et al., 2024) in numpy: dense n×n
  similarity, neighbours by sorting each row, n×n neighbour masks, and for CKNNA the
  unbiased HSIC (Song et al.) of the masked kernels.
Every pair must agree to 1e-6 before a time is printed. Times are medians of `--repeats`
runs for both sides (benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from _harness import measure, report

from mgap.engine.measures.cka import linear_cka, rbf_cka
from mgap.engine.measures.knn import cknna, mutual_knn


# ---- mayug/0-shot-llm-vision CKA class, structure kept -----------------------------------
def centering(K: np.ndarray) -> np.ndarray:
    n = K.shape[0]
    H = np.eye(n) - np.ones([n, n]) / n
    return H @ K @ H


def rbf(X: np.ndarray, sigma: float | None = None) -> np.ndarray:
    G = X @ X.T
    D = np.diag(G) - G + (np.diag(G) - G).T  # squared distances
    if sigma is None:
        sigma = math.sqrt(np.median(D[D != 0]))
    return np.exp(D * (-0.5 / (sigma * sigma)))


def kernel_hsic(X, Y, sigma):
    return np.sum(centering(rbf(X, sigma)) * centering(rbf(Y, sigma)))


def linear_hsic(X, Y):
    return np.sum(centering(X @ X.T) * centering(Y @ Y.T))


def mayug_linear_cka(X, Y):
    return linear_hsic(X, Y) / (np.sqrt(linear_hsic(X, X)) * np.sqrt(linear_hsic(Y, Y)))


def mayug_kernel_cka(X, Y, sigma=None):
    return kernel_hsic(X, Y, sigma) / np.sqrt(kernel_hsic(X, X, sigma) * kernel_hsic(Y, Y, sigma))


# ---- Kornblith et al. colab ------------------------------------------------------------------
def center_gram(gram: np.ndarray) -> np.ndarray:
    gram = gram.copy()
    means = np.mean(gram, 0, dtype=np.float64)
    means -= np.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
    return gram


def kornblith_gram_cka(X, Y):
    gx, gy = center_gram(X @ X.T), center_gram(Y @ Y.T)
    return gx.ravel().dot(gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy))


# ---- RBF kernels built once, centred once ------------------------------------------------------
def kernels_once_rbf_cka(X, Y):
    def centred(K):
        return K - K.mean(0)[None, :] - K.mean(1)[:, None] + K.mean()

    K, L = centred(rbf(X)), centred(rbf(Y))
    return np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))


# ---- platonic-rep AlignmentMetrics algorithm, numpy -------------------------------------------
def _cosine(F: np.ndarray) -> np.ndarray:
    F = F / np.linalg.norm(F, axis=1, keepdims=True)
    return F @ F.T


def _neighbours(S: np.ndarray, k: int) -> np.ndarray:
    S = S.copy()
    np.fill_diagonal(S, -1e8)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _mask(idx: np.ndarray) -> np.ndarray:
    n = idx.shape[0]
    M = np.zeros((n, n))
    M[np.arange(n)[:, None], idx] = 1.0
    return M


def platonic_mutual_knn(X, Y, k):
    A, B = _mask(_neighbours(_cosine(X), k)), _mask(_neighbours(_cosine(Y), k))
    return float(((A * B).sum(1) / k).mean())


def _hsic_unbiased(K, L):
    m = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    value = (
        np.sum(K * L.T) + np.sum(K) * np.sum(L) / ((m - 1) * (m - 2)) - 2 * np.sum(K @ L) / (m - 2)
    )
    return value / (m * (m - 3))


def platonic_cknna(X, Y, k):
    K, L = _cosine(X), _cosine(Y)

    def similarity(K, L):
        mask = _mask(_neighbours(K, k)) * _mask(_neighbours(L, k))
        return _hsic_unbiased(mask * K, mask * L)

    return similarity(K, L) / math.sqrt(similarity(K, K) * similarity(L, L))


def compare(label: str, ours, theirs, name: str, repeats: int) -> None:
    mine = measure(ours, repeats=repeats)
    peer = measure(theirs, repeats=repeats)
    assert abs(float(mine.value) - float(peer.value)) < 1e-6, (label, mine.value, peer.value)
    report(f"{label} = {float(mine.value):.6f}", mine, peer, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dense", action="store_true", help="skip the O(n³) H baselines")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, d, r = args.n, args.d, args.repeats
    X = rng.normal(size=(n, d)) + 0.5  # an offset, like real embeddings
    Y = np.tanh(X @ rng.normal(size=(d, d)) / np.sqrt(d)) + 0.5 * rng.normal(size=(n, d))
    print(f"n = {n}, d = {d}, k = {args.k}, {r} repeats per side")

    compare("linear CKA", lambda: linear_cka(X, Y), lambda: kornblith_gram_cka(X, Y),
            "Kornblith Gram", r)  # fmt: skip
    if not args.skip_dense:
        compare("linear CKA", lambda: linear_cka(X, Y), lambda: mayug_linear_cka(X, Y),
                "mayug linear_CKA", r)  # fmt: skip
    compare("RBF CKA", lambda: rbf_cka(X, Y), lambda: kernels_once_rbf_cka(X, Y),
            "kernels once", r)  # fmt: skip
    if not args.skip_dense:
        compare("RBF CKA", lambda: rbf_cka(X, Y), lambda: mayug_kernel_cka(X, Y),
                "mayug kernel_CKA", r)  # fmt: skip
    k = args.k
    compare(f"mutual {k}-NN", lambda: mutual_knn(X, Y, k), lambda: platonic_mutual_knn(X, Y, k),
            "platonic-rep mutual_knn", r)  # fmt: skip
    compare(f"CKNNA k={k}", lambda: cknna(X, Y, k), lambda: platonic_cknna(X, Y, k),
            "platonic-rep cknna", r)  # fmt: skip


if __name__ == "__main__":
    main()
