"""`mgap traverse`, `retrieval --score`, `zeroshot --score` and `gap` on Lorentz stores, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import check_schema


def _lift(v, c):
    r = np.sqrt(c) * np.linalg.norm(v, axis=-1, keepdims=True)
    return np.sinh(r) / r * v


@pytest.fixture
def lorentz_store(make_store):
    """Three images on three axes at depth 2; captions on the same axes at depth 1.5; class
    prompts at depth 1 (a closer, more generic point on each axis)."""
    c = 0.5
    axes = np.eye(3)
    X = _lift(2.0 * axes, c)
    Y = _lift(1.5 * axes, c)
    P = _lift(1.0 * axes, c)
    names = ["x-thing", "y-thing", "z-thing"]
    return make_store(
        X=X,
        Y=Y,
        image_ids=["a", "b", "c"],
        captions=["a photo along x", "a photo along y", "a photo along z"],
        category_names=names,
        primary=np.arange(3),
        labels=np.eye(3, dtype=bool),
        prompts={"category": (names, P)},
        provenance={"geometry": "lorentz", "curvature": c},
    )


def test_traverse_json_walks_to_the_origin(lorentz_store, cli):
    done = cli("traverse", str(lorentz_store), "--image", "b", "--steps", "5", "--k", "2", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    check_schema("traverse", doc)
    assert doc["score"] == "lorentz_distance" and doc["image_row"] == 1
    d = [s["origin_distance"] for s in doc["steps"]]
    assert d == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0], abs=1e-6)  # t·d(O, x), d(O, x) = 2
    # at t = 0.75 the point sits on the caption of its own axis; at the end, on the root
    assert doc["steps"][1]["nearest"][0]["text"] == "a photo along y"
    assert doc["steps"][1]["nearest"][0]["distance"] == pytest.approx(0.0, abs=1e-6)
    assert doc["steps"][-1]["nearest"][0]["text"] == "[ROOT]"
    prompts = cli(
        "traverse", str(lorentz_store), "--image", "b", "--steps", "5", "--prompts", "--json"
    )
    steps = json.loads(prompts.stdout)["steps"]
    assert steps[2]["nearest"][0]["text"] == "y-thing"  # depth 1 = the prompt


def test_traverse_refuses_bad_input(lorentz_store, make_store, cli):
    missing = cli("traverse", str(lorentz_store), "--image", "zz")
    assert missing.returncode == 1 and "no image with id 'zz'" in missing.stderr
    flat = make_store("flat.h5", X=np.eye(3), Y=np.eye(3), image_ids=["a", "b", "c"])
    euclidean = cli("traverse", str(flat), "--image", "a")
    assert euclidean.returncode == 2 and "is euclidean" in euclidean.stderr
    assert len(euclidean.stderr.strip().splitlines()) == 1


def test_retrieval_and_zeroshot_name_their_score(lorentz_store, make_store, cli):
    done = cli("retrieval", str(lorentz_store), "--json")
    doc = json.loads(done.stdout)
    assert doc["score"] == "lorentz_distance" and doc["t2i"]["R@1"] == 1.0
    alt = json.loads(
        cli("retrieval", str(lorentz_store), "--json", "--score", "space_cosine").stdout
    )
    assert alt["score"] == "space_cosine"
    atmg = json.loads(
        cli("retrieval", str(lorentz_store), "--json", "--score", "atmg_angle").stdout
    )
    assert atmg["score"] == "atmg_angle" and atmg["i2t"]["R@1"] == 1.0  # images past captions
    zs = json.loads(cli("zeroshot", str(lorentz_store), "--json").stdout)
    assert zs["score"] == "lorentz_distance" and zs["accuracy"] == 1.0
    flat = make_store("flat.h5", X=np.eye(3), Y=np.eye(3))
    assert json.loads(cli("retrieval", str(flat), "--json").stdout)["score"] == "cosine"
    wrong = cli("retrieval", str(flat), "--score", "lorentz_distance")
    assert wrong.returncode == 2 and "needs a Lorentz store" in wrong.stderr


def test_gap_prints_cones_and_histograms(lorentz_store, cli):
    done = cli("gap", str(lorentz_store), "--no-separability")
    assert done.returncode == 0, done.stderr
    assert "images inside their caption's cone" in done.stdout
    assert "distance from the origin (counts per bin)" in done.stdout
    doc = json.loads(cli("gap", str(lorentz_store), "--json", "--no-separability").stdout)
    hyp = doc["hyperbolic"]
    # images lie further out on their caption's geodesic from O: all inside, angle 0
    assert hyp["entailment"]["inside"] == 1.0
    assert hyp["entailment"]["mean_angle"] == pytest.approx(0.0, abs=1e-6)
    assert hyp["origin_distance"]["image"] == pytest.approx(2.0)
    assert hyp["tangent_gap_unnormalised"]["mean_paired_distance"] == pytest.approx(0.5)


def test_info_names_the_curvature(lorentz_store, cli):
    doc = json.loads(cli("info", str(lorentz_store), "--json").stdout)
    assert doc["geometry"] == "lorentz" and doc["curvature"] == pytest.approx(0.5)
    assert "curvature" in cli("info", str(lorentz_store)).stdout
