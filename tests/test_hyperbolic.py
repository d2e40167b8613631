"""Lorentz model: exp/log maps at the origin, geodesic distances, the hyperbolic gap report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures.gap import gap_metrics
from mgap.engine.measures.hyperbolic import (
    distance_from_origin,
    exp_map0,
    geodesic_distance,
    hyperbolic_metrics,
    log_map0,
    time_component,
)
from mgap.engine.studies.gap import gap_report
from mgap.store import open_store


def _lorentz_distance(x, y, c):
    """Textbook arccosh form with the full (time, space) vectors, for comparison."""
    xt, yt = time_component(x, c), time_component(y, c)
    inner = np.sum(x * y, axis=-1) - xt * yt
    return np.arccosh(np.maximum(-c * inner, 1.0)) / np.sqrt(c)


@pytest.mark.parametrize("c", [1.0, 0.1, 2.5])
def test_points_lie_on_the_hyperboloid(rng, c):
    x = exp_map0(rng.standard_normal((20, 5)), c)
    inner = np.sum(x * x, axis=1) - time_component(x, c) ** 2
    assert inner == pytest.approx(np.full(20, -1.0 / c))


@pytest.mark.parametrize("c", [1.0, 0.1, 2.5])
def test_exp_log_round_trip(rng, c):
    v = rng.standard_normal((50, 7)) * rng.uniform(0.01, 3.0, (50, 1))
    assert log_map0(exp_map0(v, c), c) == pytest.approx(v, abs=1e-10)
    x = rng.standard_normal((50, 7))
    assert exp_map0(log_map0(x, c), c) == pytest.approx(x, abs=1e-10)
    assert np.array_equal(exp_map0(np.zeros((1, 7)), c), np.zeros((1, 7)))


@pytest.mark.parametrize("c", [1.0, 0.1, 2.5])
def test_distance_from_origin_is_the_tangent_norm(rng, c):
    v = rng.standard_normal((40, 6)) * rng.uniform(0.01, 2.0, (40, 1))
    x = exp_map0(v, c)
    norms = np.linalg.norm(v, axis=1)
    assert distance_from_origin(x, c) == pytest.approx(norms, rel=1e-10)
    assert geodesic_distance(np.zeros_like(x), x, c) == pytest.approx(norms, rel=1e-8)


def test_curvature_scaling(rng):
    """On the hyperboloid of curvature -c, distances of the rescaled points scale by 1/sqrt(c)."""
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    c = 4.0
    scaled = geodesic_distance(x / np.sqrt(c), y / np.sqrt(c), c)
    assert scaled == pytest.approx(geodesic_distance(x, y, 1.0) / np.sqrt(c), rel=1e-10)


def test_geodesic_matches_arccosh_and_is_a_metric(rng):
    x, y, z = (rng.standard_normal((60, 5)) for _ in range(3))
    for c in (0.5, 1.0):
        d = geodesic_distance(x, y, c)
        assert d == pytest.approx(_lorentz_distance(x, y, c), rel=1e-6)
        assert geodesic_distance(x, x, c) == pytest.approx(np.zeros(60), abs=1e-12)
        assert np.all(d <= geodesic_distance(x, z, c) + geodesic_distance(z, y, c) + 1e-12)
    with pytest.raises(ValueError, match="c > 0"):
        geodesic_distance(x, y, 0.0)


def test_hyperbolic_report_values(rng):
    X = exp_map0(rng.standard_normal((40, 6)) + 1.0, 0.5)
    index = np.repeat(np.arange(40), 2)
    Y = exp_map0(log_map0(X[index], 0.5) + 0.5 * rng.standard_normal((80, 6)), 0.5)
    doc = hyperbolic_metrics(X, Y, index, 0.5)
    assert doc["curvature"] == -0.5
    tangent = gap_metrics(log_map0(X, 0.5), log_map0(Y, 0.5), index)
    assert doc["tangent_gap"]["l2m"] == pytest.approx(tangent["l2m"])
    assert doc["geodesic"]["paired"] == pytest.approx(geodesic_distance(X[index], Y, 0.5).mean())
    assert doc["origin_distance"]["image"] == pytest.approx(
        np.linalg.norm(log_map0(X, 0.5), axis=1).mean()
    )
    assert doc["geodesic"]["image_image"] > 0 and doc["geodesic"]["text_text"] > 0


def test_lorentz_store_gap_and_cli(rng, make_store, cli):
    X = exp_map0(rng.standard_normal((30, 5)), 1.0)
    Y = exp_map0(rng.standard_normal((30, 5)) - 0.5, 1.0)
    path = make_store(X=X, Y=Y, provenance={"geometry": "lorentz", "curvature": 1.0})
    doc = gap_report(open_store(path), separability=False).to_json()
    assert doc["hyperbolic"]["origin_distance"]["text"] == pytest.approx(
        np.linalg.norm(log_map0(Y), axis=1).mean(), rel=1e-5
    )
    done = cli("gap", str(path), "--json", "--no-separability")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["hyperbolic"]) == {
        "curvature",
        "score",
        "tangent_gap_definition",
        "tangent_gap",
        "tangent_gap_unnormalised",
        "entailment",
        "geodesic",
        "origin_distance",
    }
    flat = make_store("flat.h5", X=X, Y=Y, provenance={"geometry": "lorentz"})
    failed = cli("gap", str(flat))
    assert failed.returncode == 1 and "without a curvature" in failed.stderr
