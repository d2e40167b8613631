"""Lorentz-model analyses against the published formulas, transcribed here (never mgap's helpers):
entailment cones (MERU, Desai et al. ICML 2023, eqs. 7-8 and `meru/lorentz.py`), negative
geodesic distance as the retrieval / zero-shot score (MERU's `pairwise_dist`), traversals
(MERU §5, `scripts/image_traversals.py`), and the un-normalised tangent-space gap.

Note on the cone closed form: MERU's cone at a caption x opens *away* from the origin (text
entails image: the image is more specific, further out). An image at the origin is therefore
outside every caption's cone (exterior angle π), while the origin's own cone (MERU's [ROOT])
holds everything. The issue's wording "an image at the origin is inside every cone" reverses
MERU's convention; the tests pin MERU's.
"""

from __future__ import annotations

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.measures.additive import zeroshot_additive
from mgap.engine.measures.hyperbolic import (
    entailment_cones,
    exterior_angle,
    half_aperture,
    hyperbolic_metrics,
)
from mgap.engine.measures.retrieval import retrieval_metrics
from mgap.engine.measures.scores import ATMG_ANGLE, LORENTZ_DISTANCE, SPACE_COSINE, Score
from mgap.engine.measures.zeroshot import zero_shot
from mgap.engine.studies.scores import resolve_score
from mgap.engine.studies.traverse import nearest_texts, traversal_points

K = 0.1  # MERU's min_radius


def _time(x, c):
    return np.sqrt(1.0 / c + np.sum(x * x, axis=-1))


def _dist(x, y, c):
    """Textbook geodesic distance on the hyperboloid: arccosh(−c⟨x,y⟩_L)/√c."""
    inner = np.sum(x * y, axis=-1) - _time(x, c) * _time(y, c)
    return np.arccosh(np.maximum(-c * inner, 1.0)) / np.sqrt(c)


def _lift(v, c):
    """exp map at the origin, written from the formula: sinh(√c‖v‖) v / (√c‖v‖)."""
    r = np.sqrt(c) * np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(r > 0, np.sinh(r) / np.where(r > 0, r, 1), 1.0) * v


def _exterior_by_law_of_cosines(x, y, c):
    """π − the interior angle at x of triangle O x y, from the hyperbolic law of cosines."""
    o = np.zeros_like(x)
    a, b, e = (np.sqrt(c) * _dist(p, q, c) for p, q in ((x, y), (o, x), (o, y)))
    cos_inner = (np.cosh(b) * np.cosh(a) - np.cosh(e)) / (np.sinh(b) * np.sinh(a))
    return np.pi - np.arccos(np.clip(cos_inner, -1, 1))


@pytest.mark.parametrize("c", [1.0, 0.4, 2.0])
def test_exterior_angle_matches_the_law_of_cosines(rng, c):
    x = _lift(rng.standard_normal((200, 6)), c)
    y = _lift(rng.standard_normal((200, 6)), c)
    assert exterior_angle(x, y, c) == pytest.approx(_exterior_by_law_of_cosines(x, y, c), abs=1e-7)


@pytest.mark.parametrize("c", [1.0, 0.3])
def test_half_aperture_is_merus_formula(rng, c):
    x = _lift(rng.standard_normal((100, 4)) * rng.uniform(0.01, 2, (100, 1)), c)
    want = np.arcsin(np.minimum(2 * K / (np.sqrt(c) * np.linalg.norm(x, axis=1)), 1.0))
    assert half_aperture(x, c) == pytest.approx(want, rel=1e-12)
    near_origin = np.full((1, 4), 0.5 * K / np.sqrt(c) / 2)  # ‖x‖ < 2K/√c
    assert half_aperture(near_origin, c) == pytest.approx([np.pi / 2])


def test_cone_closed_forms():
    c = 0.7
    v = np.array([[1.2, -0.4, 0.3]])
    caption = _lift(v, c)
    further = _lift(2.5 * v, c)  # on the geodesic from O through the caption, past it
    between = _lift(0.4 * v, c)  # on the same geodesic, between O and the caption
    origin = np.zeros_like(caption)
    assert exterior_angle(caption, further, c) == pytest.approx([0.0], abs=1e-6)
    assert exterior_angle(caption, between, c) == pytest.approx([np.pi], abs=1e-6)
    assert exterior_angle(caption, origin, c) == pytest.approx([np.pi], abs=1e-6)
    side = _lift(v + np.array([[0.0, 0.0, 5.0]]), c)
    assert 0 < exterior_angle(caption, side, c)[0] < np.pi
    # three captions, three images: past, between, the origin -> 1 inside of 3
    X = np.vstack([further, between, origin])
    Y = np.vstack([caption, caption, caption])
    doc = entailment_cones(X, Y, np.arange(3), c)
    aperture = np.arcsin(2 * K / (np.sqrt(c) * np.linalg.norm(caption)))
    assert doc["inside"] == pytest.approx(1 / 3)
    assert doc["mean_angle_minus_aperture"] == pytest.approx((0 + np.pi + np.pi) / 3 - aperture)
    assert doc["n_pairs"] == 3


def test_cone_statistic_is_rotation_invariant(rng):
    """An orthogonal map of the space part is an isometry fixing O: nothing may change."""
    c = 1.3
    X = _lift(rng.standard_normal((60, 5)), c)
    Y = _lift(rng.standard_normal((120, 5)) * 0.5, c)
    index = rng.integers(0, 60, 120)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    a, b = entailment_cones(X, Y, index, c), entailment_cones(X @ Q, Y @ Q, index, c)
    for key in ("inside", "mean_angle_minus_aperture", "mean_angle", "mean_half_aperture"):
        assert a[key] == pytest.approx(b[key], abs=1e-9)


@pytest.mark.parametrize("c", [1.0, 0.6])
def test_lorentz_score_is_negative_geodesic_distance(rng, c):
    X = _lift(rng.standard_normal((7, 4)), c)
    Y = _lift(rng.standard_normal((9, 4)), c)
    want = -_dist(X[:, None, :], Y[None, :, :], c)
    assert Score(LORENTZ_DISTANCE, c).matrix(X, Y) == pytest.approx(want, abs=1e-9)


def _recall_at_1(X, Y, index, c):
    """Brute force: t2i and i2t R@1 by the transcribed distance (no ties in these data)."""
    D = _dist(X[:, None, :], Y[None, :, :], c)
    t2i = np.mean(np.argmin(D, axis=0) == index)
    i2t = np.mean([index[np.argmin(D[i])] == i for i in range(X.shape[0])])
    return i2t, t2i


def test_retrieval_ranks_by_geodesic_distance(rng):
    c = 0.8
    X = _lift(rng.standard_normal((40, 6)), c)
    index = np.repeat(np.arange(40), 2)
    Y = _lift(rng.standard_normal((80, 6)) * 0.8 + 0.5 * rng.standard_normal((40, 6))[index], c)
    got = retrieval_metrics(X, Y, index, score=Score(LORENTZ_DISTANCE, c))
    i2t, t2i = _recall_at_1(X, Y, index, c)
    assert got["i2t"]["R@1"] == pytest.approx(i2t) and got["t2i"]["R@1"] == pytest.approx(t2i)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))  # isometry: recall must not move
    rotated = retrieval_metrics(X @ Q, Y @ Q, index, score=Score(LORENTZ_DISTANCE, c))
    assert rotated["t2i"] == pytest.approx(got["t2i"]) and rotated["i2t"] == pytest.approx(
        got["i2t"]
    )


def test_distance_sees_depth_where_space_cosine_cannot():
    """Images on one ray at different depths: the space cosine ties them all, the distance
    picks the right one."""
    c = 1.0
    direction = np.array([1.0, 0.0, 0.0])
    depths = np.array([0.5, 1.0, 1.5, 2.0])
    X = _lift(depths[:, None] * direction, c)
    Y = _lift((depths + 0.05)[:, None] * direction, c)
    index = np.arange(4)
    lorentz = retrieval_metrics(X, Y, index, score=Score(LORENTZ_DISTANCE, c))
    cosine = retrieval_metrics(X, Y, index, score=Score(SPACE_COSINE))
    assert lorentz["t2i"]["R@1"] == 1.0
    assert cosine["t2i"]["R@1"] == pytest.approx(0.25)  # four-way tie, broken at random


def test_zero_shot_by_distance():
    c = 1.0
    classes = _lift(np.array([[0.3, 0.0], [1.5, 0.0], [0.0, 1.0]]), c)
    images = _lift(np.array([[0.35, 0.02], [1.4, 0.1], [0.1, 1.2], [2.5, 0.0]]), c)
    truth = np.array([0, 1, 2, 1])
    names = ["near", "far", "up"]
    doc = zero_shot(images, classes, truth, names, score=Score(LORENTZ_DISTANCE, c))
    assert doc["accuracy"] == 1.0
    cosine = zero_shot(images, classes, truth, names, score=Score(SPACE_COSINE))
    assert cosine["accuracy"] < 1.0  # "near" and "far" share a direction
    # the per-group sums (`zeroshot --groups`) rank with the same score
    hot = np.eye(3, dtype=bool)[truth]
    sums = zeroshot_additive(images, classes, hot, Score(LORENTZ_DISTANCE, c))
    assert sums.columns["top1"].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_score_choice_follows_the_geometry():
    assert resolve_score("lorentz", 0.5).name == LORENTZ_DISTANCE
    assert resolve_score("lorentz", 0.5, "space_cosine").name == SPACE_COSINE
    assert resolve_score("euclidean", 0.0).name == "cosine"
    with pytest.raises(UsageError, match="needs a Lorentz store"):
        resolve_score("euclidean", 0.0, LORENTZ_DISTANCE)
    with pytest.raises(UsageError, match="ambiguous"):
        resolve_score("lorentz", 1.0, "cosine")


def test_traversal_closed_form(rng):
    c = 0.9
    v = rng.standard_normal(5)
    x = _lift(v[None, :], c)[0]
    t, points = traversal_points(x, c, 11)
    o = np.zeros(5)
    radius = np.linalg.norm(v)  # d(O, x) = ‖v‖ for x = exp_O(v)
    from_origin = _dist(points, o[None, :], c)
    assert t == pytest.approx(np.linspace(1, 0, 11))
    assert from_origin == pytest.approx(t * radius, abs=1e-9)
    assert np.all(np.diff(from_origin) < 0)
    assert points[0] == pytest.approx(x) and points[-1] == pytest.approx(o, abs=1e-12)
    # every step lies on the geodesic: d(x, p) + d(p, O) = d(x, O)
    assert _dist(x[None, :], points, c) + from_origin == pytest.approx(np.full(11, radius))


def test_nearest_texts_and_the_root():
    c = 1.0
    direction = np.array([0.0, 1.0])
    texts = _lift(np.array([[0.0, 2.0], [0.0, 1.0], [3.0, 0.0]]), c)
    x = _lift((2.0 * direction)[None, :], c)[0]
    _, points = traversal_points(x, c, 3)  # at depths 2, 1, 0 along the y axis
    rows, dists, entails = nearest_texts(points, texts, c, k=1)
    assert rows[:, 0].tolist() == [0, 1, -1]  # the text at the same spot, then the root
    assert dists[:, 0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert entails[:, 0].all()  # at the apex, and the root entails everything
    kept, _, _ = nearest_texts(points, texts, c, k=2, entailed_only=True)
    # the text at depth 1 holds the point at depth 2 in its cone; the one at depth 2 does not
    # hold the point at depth 1
    assert 1 in kept[0] and 0 not in kept[1]


def test_tangent_gap_keeps_norms(rng):
    c = 0.5
    X = _lift(rng.standard_normal((30, 4)) * 2, c)
    Y = _lift(rng.standard_normal((60, 4)) * 0.5, c)
    index = np.repeat(np.arange(30), 2)

    def log0(z):
        n = np.sqrt(c) * np.linalg.norm(z, axis=1, keepdims=True)
        return np.arcsinh(n) / n * z

    U, V = log0(X), log0(Y)
    doc = hyperbolic_metrics(X, Y, index, c)
    raw = doc["tangent_gap_unnormalised"]
    assert raw["centroid_distance"] == pytest.approx(np.linalg.norm(U.mean(0) - V.mean(0)))
    assert raw["mean_paired_distance"] == pytest.approx(np.linalg.norm(U[index] - V, axis=1).mean())
    assert raw["mean_norm_image"] == pytest.approx(np.linalg.norm(U, axis=1).mean())
    # scaling every tangent vector by s scales the raw gap by s; the normalised one is unmoved
    s = 1.7
    doc2 = hyperbolic_metrics(_lift(s * U, c), _lift(s * V, c), index, c)
    assert doc2["tangent_gap_unnormalised"]["centroid_distance"] == pytest.approx(
        s * raw["centroid_distance"]
    )
    assert doc2["tangent_gap"]["l2m"] == pytest.approx(doc["tangent_gap"]["l2m"])
    hist = doc["origin_distance"]["histogram"]
    assert sum(hist["image"]) == 30 and sum(hist["text"]) == 60
    assert doc["score"] == "lorentz_distance"


def _atmg_pairwise_oxy_angle(x, y, c, eps=1e-8):
    """ATMG's `lorentz.pairwise_oxy_angle(x, y)` (samgregoost/atmg), transcribed in numpy:
    exterior angle at each x towards each y, shape (len x, len y)."""
    x_time = np.sqrt(1 / c + np.sum(x**2, axis=-1))
    y_time = np.sqrt(1 / c + np.sum(y**2, axis=-1))
    c_xyl = c * (x @ y.T - np.outer(x_time, y_time))
    numer = y_time[None, :] + c_xyl * x_time[:, None]
    denom = np.sqrt(np.maximum(c_xyl**2 - 1, eps))
    cos = numer / (np.linalg.norm(x, axis=-1)[:, None] * denom + eps)
    return np.arccos(np.clip(cos, -1 + eps, 1 - eps))


def test_atmg_angle_ranks_as_atmgs_evaluation(rng):
    """ATMG's `evaluation/retrieval.py`: text->image scores = |oxy_angle(images, texts)|.T
    (descending); image->text scores = −|oxy_angle(texts, images)|.T (descending)."""
    c = 0.9
    X = _lift(rng.standard_normal((30, 5)) * 1.5, c)
    index = np.repeat(np.arange(30), 2)
    Y = _lift(0.6 * rng.standard_normal((60, 5)), c)
    t2i_scores = np.abs(_atmg_pairwise_oxy_angle(X, Y, c)).T  # (texts, images)
    i2t_scores = -np.abs(_atmg_pairwise_oxy_angle(Y, X, c)).T  # (images, texts)
    want_t2i = np.mean(np.argmax(t2i_scores, axis=1) == index)
    want_i2t = np.mean([index[np.argmax(i2t_scores[i])] == i for i in range(30)])
    got = retrieval_metrics(X, Y, index, score=Score(ATMG_ANGLE, c))
    assert got["t2i"]["R@1"] == pytest.approx(want_t2i)
    assert got["i2t"]["R@1"] == pytest.approx(want_i2t)
    assert Score(ATMG_ANGLE, c).matrix(X, Y) == pytest.approx(t2i_scores.T, abs=1e-6)
    assert Score(ATMG_ANGLE, c, "i2t").matrix(X, Y) == pytest.approx(i2t_scores, abs=1e-6)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))  # isometry fixing O: ranks unmoved
    rotated = retrieval_metrics(X @ Q, Y @ Q, index, score=Score(ATMG_ANGLE, c))
    assert rotated["t2i"] == pytest.approx(got["t2i"]) and rotated["i2t"] == pytest.approx(
        got["i2t"]
    )


def test_atmg_angle_closed_form():
    """A text between the origin and the image (on its geodesic) scores π for text->image; an
    image further out on a caption's geodesic scores 0 (the best) for image->text."""
    c = 1.0
    v = np.array([[0.8, 0.6]])
    image, text = _lift(2.0 * v, c), _lift(0.5 * v, c)
    assert Score(ATMG_ANGLE, c).matrix(image, text) == pytest.approx(np.array([[np.pi]]), abs=1e-3)
    assert Score(ATMG_ANGLE, c, "i2t").matrix(image, text) == pytest.approx(
        np.array([[0.0]]), abs=1e-3
    )


def test_robustness_on_a_lorentz_store_ranks_by_distance(make_store):
    """Images on one ray at four depths, captions just past them: only the distance can tell
    them apart (the space cosine ties all four)."""
    from mgap.engine.studies.robustness import robustness_report
    from mgap.store import open_store

    c = 1.0
    depths = np.array([0.5, 1.0, 1.5, 2.0])
    X = _lift(depths[:, None] * np.array([1.0, 0.0, 0.0]), c)
    Y = _lift((depths + 0.05)[:, None] * np.array([1.0, 0.0, 0.0]), c)
    path = make_store(
        X=X,
        Y=Y,
        perturbed={"noise:0": X.copy()},
        provenance={"geometry": "lorentz", "curvature": c},
    )
    doc = robustness_report(open_store(path)).to_json()
    assert doc["score"] == "lorentz_distance"
    assert [row["t2i_R@1"] for row in doc["settings"]] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("name", [LORENTZ_DISTANCE, ATMG_ANGLE])
def test_torch_backend_scores_like_numpy(rng, name):
    """The Lorentz scores on torch blocks (the CUDA path, here on the CPU) match numpy."""
    pytest.importorskip("torch")
    from mgap.engine.compute.backend import resolve_backend
    from mgap.engine.measures.retrieval import score_ranks

    c = 0.7
    X = _lift(rng.standard_normal((50, 6)), c)
    index = np.repeat(np.arange(50), 2)
    Y = _lift(0.5 * rng.standard_normal((100, 6)) + 0.5 * X[index], c)
    score = Score(name, c)
    a = score_ranks(X, Y, index, score, backend=resolve_backend("cpu"), block=16)
    b = score_ranks(X, Y, index, score, backend=resolve_backend("cpu", engine="torch"), block=16)
    for ours, theirs in zip(a, b, strict=True):
        assert np.array_equal(ours.above, theirs.above)
        assert np.array_equal(ours.tied, theirs.tied)
