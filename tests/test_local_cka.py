"""Local CKA by rank-one border updates == CKA of rebuilt (b+1) x (b+1) kernels."""

from __future__ import annotations

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.measures import local_cka as lc
from mgap.engine.measures.cka import median_sigma, squared_distances


def _cka_h(K, L):
    m = K.shape[0]
    H = np.eye(m) - 1.0 / m

    def hsic(A, B):
        return np.trace(A @ H @ B @ H)

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _kernel(Z, kernel, sigma):
    if kernel == "linear":
        return Z @ Z.T
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    return np.exp(-D / (2 * sigma**2))


def _brute(Xb, Yb, Xq, Yc, kernel):
    sx = median_sigma(squared_distances(Xb))
    sy = median_sigma(squared_distances(Yb))
    out = np.empty((len(Xq), len(Yc)))
    for i, x in enumerate(Xq):
        K = _kernel(np.vstack([Xb, x]), kernel, sx)
        for j, y in enumerate(Yc):
            out[i, j] = _cka_h(K, _kernel(np.vstack([Yb, y]), kernel, sy))
    return out


@pytest.fixture
def spaces(rng):
    X = rng.normal(size=(50, 10)) + 2.0  # a shared offset, like real embeddings
    Y = np.tanh(X @ rng.normal(size=(10, 6))) + 0.2 * rng.normal(size=(50, 6))
    return X[:30], Y[:30], X[30:], Y[30:]


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_rank_one_scores_equal_brute_force(spaces, kernel):
    Xb, Yb, Xq, Yq = spaces
    fast = lc.local_cka_scores(Xb, Yb, Xq, Yq, kernel)
    assert fast.shape == (20, 20)
    assert np.allclose(fast, _brute(Xb, Yb, Xq, Yq, kernel), atol=1e-10, rtol=0)


def test_explicit_sigma_is_used(spaces):
    Xb, Yb, Xq, Yq = spaces
    a = lc.local_cka_scores(Xb, Yb, Xq[:3], Yq[:4], "rbf", sigma=(1.5, 0.7))
    want = np.array(
        [
            [
                _cka_h(
                    _kernel(np.vstack([Xb, x]), "rbf", 1.5),
                    _kernel(np.vstack([Yb, y]), "rbf", 0.7),
                )
                for y in Yq[:4]
            ]
            for x in Xq[:3]
        ]
    )
    assert np.allclose(a, want, atol=1e-10)


def test_identical_spaces_retrieve_perfectly(spaces, rng):
    Xb, _, Xq, _ = spaces
    Q = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    result = lc.local_cka_retrieval(Xb, 2.0 * Xb @ Q, Xq, 2.0 * Xq @ Q)
    assert result == {"accuracy": 1.0, "top1": 1.0, "top5": 1.0, "top10": 1.0}


def test_hungarian_and_topk_on_hand_made_matrices():
    S = np.array(
        [
            [0.9, 0.8, 0.1],  # query 0: right at top-1
            [0.95, 0.9, 0.2],  # query 1: its candidate ranks second
            [0.1, 0.3, 0.2],  # query 2: its candidate ranks second
        ]
    )
    assert lc.topk_accuracy(S, (1, 2)) == {"top1": pytest.approx(1 / 3), "top2": 1.0}
    # one-to-one: the identity totals 2.0, the best alternative (swap 0 and 1) 1.95
    assert lc.hungarian_accuracy(S) == 1.0
    crossed = np.array([[0.5, 0.9, 0.0], [0.9, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert lc.hungarian_accuracy(crossed) == pytest.approx(1 / 3)
    ties = np.ones((3, 3))  # a tie counts against the query
    assert lc.topk_accuracy(ties, (1, 3)) == {"top1": 0.0, "top3": 1.0}


def test_bad_inputs(spaces):
    Xb, Yb, Xq, Yq = spaces
    with pytest.raises(UsageError):
        lc.local_cka_scores(Xb, Yb, Xq, Yq, "cosine")
    with pytest.raises(UsageError):
        lc.local_cka_scores(Xb, Yb[:5], Xq, Yq)
