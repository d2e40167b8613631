"""Correlations across stores: written-out formulas, scipy, store-bootstrap coverage and
permutation p-values (mgap.engine.measures.correlation)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from mgap.engine.measures.correlation import correlate, kendall, pearson, spearman

X = np.array([1.0, 2.5, 2.5, 4.0, 7.0, 3.0, 0.5, 6.0])
Y = np.array([2.0, 1.0, 3.0, 3.0, 8.0, 2.5, 0.0, 9.0])


def written_pearson(x, y) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def written_ranks(x) -> list[float]:
    """Average 1-based ranks: tied values share the mean of the positions they occupy."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def written_kendall_b(x, y) -> float:
    concordant_minus_discordant = 0
    untied_x = untied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx = int(x[i] > x[j]) - int(x[i] < x[j])
        sy = int(y[i] > y[j]) - int(y[i] < y[j])
        concordant_minus_discordant += sx * sy
        untied_x += sx != 0
        untied_y += sy != 0
    return concordant_minus_discordant / math.sqrt(untied_x * untied_y)


def test_pearson_equals_the_formula_and_scipy():
    assert float(pearson(X, Y)) == pytest.approx(written_pearson(X, Y), abs=1e-12)
    assert float(pearson(X, Y)) == pytest.approx(stats.pearsonr(X, Y)[0], abs=1e-12)


def test_spearman_is_pearson_of_average_ranks_and_equals_scipy():
    expected = written_pearson(written_ranks(X), written_ranks(Y))
    assert float(spearman(X, Y)) == pytest.approx(expected, abs=1e-12)
    assert float(spearman(X, Y)) == pytest.approx(stats.spearmanr(X, Y)[0], abs=1e-12)


def test_kendall_tau_b_equals_the_pair_count_and_scipy():
    assert float(kendall(X, Y)) == pytest.approx(written_kendall_b(X, Y), abs=1e-12)
    assert float(kendall(X, Y)) == pytest.approx(stats.kendalltau(X, Y)[0], abs=1e-12)


def test_a_batch_equals_row_by_row():
    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=(5, 9)), rng.normal(size=(5, 9))
    for stat, ref in ((pearson, stats.pearsonr), (spearman, stats.spearmanr)):
        got = stat(xs, ys)
        for row in range(5):
            assert got[row] == pytest.approx(ref(xs[row], ys[row])[0], abs=1e-12)
    got = kendall(xs, ys)
    for row in range(5):
        assert got[row] == pytest.approx(written_kendall_b(xs[row], ys[row]), abs=1e-12)


def test_a_perfect_monotone_relation_gives_one():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.3])
    up, down = np.exp(3 * x), -(x**3)
    assert float(spearman(x, up)) == pytest.approx(1.0)
    assert float(kendall(x, up)) == pytest.approx(1.0)
    assert float(spearman(x, down)) == pytest.approx(-1.0)
    assert float(kendall(x, down)) == pytest.approx(-1.0)
    out = correlate(x, up, boot=200, perms=200, seed=0)
    assert out["spearman"]["value"] == pytest.approx(1.0)
    assert out["kendall"]["value"] == pytest.approx(1.0)
    assert out["spearman"]["interval"] == pytest.approx([1.0, 1.0])


def test_a_constant_side_is_undefined_not_a_number():
    out = correlate(np.ones(5), np.arange(5.0), boot=50, perms=50)
    for method in ("spearman", "kendall", "pearson"):
        assert out[method]["value"] is None
        assert out[method]["p_value"] is None


def test_the_store_bootstrap_interval_covers_the_true_rho():
    """Bivariate normal zoos with correlation r: the population Spearman ρ is
    (6/π)·arcsin(r/2) (Pearson 1907); the 95% interval should cover it in ≥ 18/20."""
    r = 0.6
    true_rho = 6 / math.pi * math.asin(r / 2)
    cov = [[1.0, r], [r, 1.0]]
    covered = 0
    for seed in range(20):
        zoo = np.random.default_rng(100 + seed).multivariate_normal([0, 0], cov, size=60)
        low, high = correlate(zoo[:, 0], zoo[:, 1], boot=1000, perms=10, seed=seed)["spearman"][
            "interval"
        ]
        covered += low <= true_rho <= high
    assert covered >= 18


def test_permutation_p_values_are_uniform_under_independence():
    """Independent x, y: the p-values over seeds follow U(0, 1) (Kolmogorov–Smirnov).
    30 stores, so that τ takes fine enough steps: a coarse statistic (τ on 12 stores) ties
    with its null often and its p-values are conservative, not uniform."""
    pvalues = {m: [] for m in ("spearman", "kendall", "pearson")}
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        out = correlate(rng.normal(size=30), rng.normal(size=30), boot=1, perms=199, seed=seed)
        for method in pvalues:
            pvalues[method].append(out[method]["p_value"])
    for method, values in pvalues.items():
        assert stats.kstest(values, "uniform").pvalue > 0.01, method


def test_a_perfect_relation_gets_the_smallest_p_value():
    x = np.arange(10.0)
    out = correlate(x, 2 * x + 1, boot=10, perms=999, seed=0)
    # a permutation reaches |ρ| = 1 only as the identity or its reverse: 2/10! per draw
    for method in ("spearman", "kendall", "pearson"):
        assert out[method]["p_value"] == pytest.approx(1 / 1000)
