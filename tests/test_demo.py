"""`mgap demo` end to end in a clean home: trains, extracts two stores, summarises, no TUI."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from mgap.engine.reports import REPORTS, json_schema
from mgap.store import open_store


def _clean_env(tmp_path):
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "MGAP_STORE_DIR": str(tmp_path / "stores"),
        "MGAP_CACHE_DIR": "",
        "MGAP_CONFIG": "",
    }


def _unit(A):
    A = np.asarray(A, dtype=np.float64)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _reference(store) -> dict:
    """docs/design.md §7 written out here: L2M, mean paired cosine, t2i R@5 (CLIP_benchmark)."""
    X, Y = _unit(store.image_embeddings()), _unit(store.text_embeddings())
    index = np.asarray(store.text_image_index)
    scores = Y @ X.T
    own = scores[np.arange(len(Y)), index]
    rank = (scores > own[:, None]).sum(1)  # images scored above the caption's own image
    return {
        "l2m": float(np.linalg.norm(X.mean(0) - Y.mean(0))),
        "cos": float(np.mean(np.sum(X[index] * Y, axis=1))),
        "t2i_R@5": float(np.mean(rank < 5)),
    }


def _check_demo(doc, tmp_path, name, n_images):
    jsonschema.validate(doc, json_schema(REPORTS["demo"]))
    assert doc["toy_model"] == f"toy:{name}" and doc["trained_now"] is True
    assert (tmp_path / "cache" / "mgap" / "toy" / name / "model.safetensors").is_file()
    trained, random = doc["stores"]
    assert trained["model"] == f"toy:{name}" and random["model"] == f"toy:{name}@random"
    for summary in doc["stores"]:
        store = open_store(summary["store"])
        assert store.status == "complete" and store.n_images == n_images
        assert summary["n_texts"] == 3 * n_images
        ref = _reference(store)
        assert summary["gap"]["l2m"] == pytest.approx(ref["l2m"], abs=1e-5)
        assert summary["gap"]["mean_paired_cosine"] == pytest.approx(ref["cos"], abs=1e-5)
        assert summary["retrieval"]["t2i"]["R@5"] == pytest.approx(ref["t2i_R@5"])
        assert set(summary["zero_shot"]) == {"shape", "colour", "size", "position", "background"}
        assert set(summary["object_bias"]) == {"image", "text"}
        assert set(store.prompt_sets) == {"category", "colour", "size", "position", "background"}
    # training makes captions find their images far better than the random twin does
    assert trained["retrieval"]["t2i"]["R@5"] > random["retrieval"]["t2i"]["R@5"]
    assert trained["zero_shot"]["background"] > 2 / 3


def test_demo_quick_end_to_end_in_a_clean_home(cli, tmp_path):
    result = cli("demo", "--quick", "--no-tui", "--json", env=_clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    _check_demo(json.loads(result.stdout), tmp_path, "demo-quick", 100)
    assert "training toy:demo-quick" in result.stderr


@pytest.mark.slow
def test_demo_full_end_to_end_in_a_clean_home(cli, tmp_path):
    result = cli("demo", "--no-tui", "--json", env=_clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    _check_demo(doc, tmp_path, "demo", 500)
    assert doc["stores"][0]["zero_shot"]["shape"] > 0.5  # 0.886 measured (chance 1/6)


def test_demo_with_bad_store_dir_is_one_line_error(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = _clean_env(tmp_path)
    result = cli("demo", "--quick", "--no-tui", "--store-dir", str(blocker / "x"), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("mgap: error:")
    assert "Traceback" not in result.stderr
