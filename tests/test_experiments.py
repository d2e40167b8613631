"""Gap shift and dimension ablation: closed forms, InfoNCE against a direct computation, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures import experiments
from mgap.engine.measures.experiments import ablate_dims, gap_shift, symmetric_infonce
from mgap.engine.measures.gap import gap_metrics
from mgap.engine.measures.retrieval import retrieval_metrics


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _pairs(rng, n=60, per=2, d=10):
    X = rng.standard_normal((n, d)) + 3.0 * np.eye(d)[0]
    index = np.repeat(np.arange(n), per)
    Y = X[index] + 0.8 * rng.standard_normal((n * per, d)) - 3.0 * np.eye(d)[1]
    return X, Y, index


def test_infonce_against_direct_log_softmax(rng, monkeypatch):
    monkeypatch.setattr(experiments, "LOSS_BLOCK", 7)
    Xn, Yn = _unit(rng.standard_normal((30, 6))), _unit(rng.standard_normal((30, 6)))
    logits = 20.0 * Xn @ Yn.T
    row = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    col = logits - np.log(np.exp(logits).sum(0, keepdims=True))
    expected = -0.5 * (np.diag(row).mean() + np.diag(col).mean())
    assert symmetric_infonce(Xn, Yn, 20.0) == pytest.approx(expected, rel=1e-12)
    assert symmetric_infonce(Xn, Xn, 1000.0) == pytest.approx(0.0, abs=1e-6)


def test_shift_at_zero_is_the_plain_gap_and_positive_lambda_closes_it(rng):
    X, Y, index = _pairs(rng)
    rows = gap_shift(X, Y, index, [0.0, 0.5, -0.5], logit_scale=50.0)
    base = gap_metrics(X, Y, index)
    assert [r["lambda"] for r in rows] == [0.0, 0.5, -0.5]
    assert rows[0]["l2m"] == pytest.approx(base["l2m"])
    assert rows[0]["i2t"] == retrieval_metrics(X, Y, index)["i2t"]
    assert rows[1]["l2m"] < rows[0]["l2m"] < rows[2]["l2m"]
    first = np.arange(0, len(index), 2)
    Xn, Yn = _unit(X), _unit(Y)
    assert rows[0]["infonce"] == pytest.approx(symmetric_infonce(Xn, Yn[first], 50.0))


def test_shift_follows_the_formula(rng):
    X, Y, index = _pairs(rng)
    Xn, Yn = _unit(X), _unit(Y)
    delta = Xn.mean(0) - Yn.mean(0)
    direction = delta / np.linalg.norm(delta)
    lam = 0.8
    Xs, Ys = _unit(Xn - lam / 2 * direction), _unit(Yn + lam / 2 * direction)
    row = gap_shift(X, Y, index, [lam])[0]
    assert row["l2m"] == pytest.approx(np.linalg.norm(Xs.mean(0) - Ys.mean(0)))
    assert row["mean_paired_cosine"] == pytest.approx(np.mean(np.sum(Xs[index] * Ys, 1)))


def test_ablation_drops_the_top_gap_dims(rng):
    X, Y, index = _pairs(rng)
    rows = ablate_dims(X, Y, index, 3)
    assert [r["k"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["dropped"] == [] and sorted(rows[2]["dropped"]) == [0, 1]
    assert rows[0]["l2m"] == pytest.approx(gap_metrics(X, Y, index)["l2m"])
    keep = [d for d in range(10) if d not in rows[3]["dropped"]]
    assert rows[3]["l2m"] == pytest.approx(gap_metrics(X[:, keep], Y[:, keep], index)["l2m"])
    assert rows[2]["l2m"] < 0.5 * rows[0]["l2m"]
    with pytest.raises(ValueError, match="k_max"):
        ablate_dims(X, Y, index, 10)


def test_cli_experiments(rng, make_store, cli):
    X, Y, index = _pairs(rng, n=30)
    path = make_store(X=X, Y=Y, caption_image_row=index)
    done = cli("experiment", "shift", str(path), "--lambdas=-0.5,0,0.5", "--json")
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)["steps"]
    assert [s["lambda"] for s in steps] == [-0.5, 0.0, 0.5]
    assert {"l2m", "rmg", "i2t", "t2i", "infonce"} <= set(steps[0])
    ablate = cli("experiment", "ablate", str(path), "--k-max", "2")
    assert ablate.returncode == 0 and "ablation" in ablate.stdout
    bad = cli("experiment", "shift", str(path), "--lambdas", "a,b")
    assert bad.returncode == 2 and "--lambdas" in bad.stderr
    too_many = cli("experiment", "ablate", str(path), "--k-max", "10")
    assert too_many.returncode == 2 and "--k-max" in too_many.stderr


def test_documented_lambdas_parse_as_written(rng, make_store, cli):
    import re
    from pathlib import Path

    commands_doc = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text()
    written = re.search(r"mgap experiment shift STORE \[--lambdas ([^\]]+)\]", commands_doc).group(
        1
    )
    X, Y, index = _pairs(rng, n=20)
    path = str(make_store(X=X, Y=Y, caption_image_row=index))
    for value, expected in ((written, [-1.0, -0.5, 0.0, 0.5, 1.0]), ("-1", [-1.0])):
        done = cli("experiment", "shift", path, "--lambdas", value, "--json")
        assert done.returncode == 0, done.stderr
        assert [s["lambda"] for s in json.loads(done.stdout)["steps"]] == expected
