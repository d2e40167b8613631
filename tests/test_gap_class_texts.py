"""Classification stores: the text side of the gap metrics is one text per class.

The published reference is "Two Effects, One Trigger" (analysis/gap_precompute.py, the
ImageNet branch of compute_l2m, compute_l2i and compute_rmg), transcribed below.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgap.engine.measures.class_texts import classification_layout
from mgap.engine.studies.gap import gap_report
from mgap.store import open_store


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _peer_imagenet_metrics(image_features, text_features, labels):
    """compute_l2m / compute_l2i / compute_rmg with dataset == "imagenet": rows normalised
    (encode_clip), text_features holds one prompt per class, labels the class of each image."""
    image_features = _unit(image_features)
    text_features = _unit(text_features)
    l2m = np.linalg.norm(image_features.mean(axis=0) - text_features.mean(axis=0))
    text_feature_per_image = np.stack([text_features[label] for label in labels])
    l2i = np.linalg.norm(image_features - text_feature_per_image, axis=-1).mean()
    matching = np.sum(image_features * text_feature_per_image, axis=1).mean()
    matching = 1 - (matching + 1) / 2
    matching = matching if matching > 0 else 1e-3
    i_x_i = image_features @ image_features.T
    np.fill_diagonal(i_x_i, 0)
    mean_img = i_x_i.sum() / (i_x_i.size - i_x_i.shape[0])
    mean_img = 1 - (mean_img + 1) / 2
    t_x_t = text_features @ text_features.T
    np.fill_diagonal(t_x_t, 0)
    mean_txt = t_x_t.sum() / (t_x_t.size - t_x_t.shape[0])
    mean_txt = 1 - (mean_txt + 1) / 2
    rmg = matching / (matching + (mean_img + mean_txt) / 2)
    return {"l2m": l2m, "l2i": l2i, "rmg": rmg, "intra_text_cosine": 1 - 2 * mean_txt}


def _folder_store(make_store, name, X, primary, templates, names):
    """A store laid out like `--dataset imagefolder`: every image captioned with each of its
    class's prompts, whose embeddings are `templates[t][class]`."""
    K, T = len(names), len(templates)
    captions, rows, Y = [], [], []
    for i, c in enumerate(primary):
        for t in range(T):
            captions.append(f"prompt {t} of {names[c]}")
            rows.append(i)
            Y.append(templates[t][c])
    return make_store(
        name,
        X=X,
        Y=np.asarray(Y),
        captions=captions,
        caption_image_row=np.asarray(rows),
        category_names=names,
        supercategories=[""] * K,
        primary=np.asarray(primary),
        labels=np.eye(K, dtype=bool)[primary],
    )


@pytest.fixture
def classification(rng):
    K, d = 5, 9
    primary = np.array([0] * 12 + [1] * 3 + [2] * 7 + [3] * 2 + [4] * 6)  # unequal class sizes
    centres = rng.normal(size=(K, d))
    X = _unit(centres[primary] + rng.normal(size=(primary.size, d)))
    prompts = _unit(centres + 0.5 * rng.normal(size=(K, d)))
    # stores hold float32: start from float32 values so both sides see the same numbers
    X, prompts = X.astype(np.float32).astype(np.float64), prompts.astype(np.float32).astype(float)
    return X, primary, prompts, [f"class{k}" for k in range(K)]


def test_one_prompt_per_class_matches_the_published_metrics(make_store, classification):
    X, primary, prompts, names = classification
    doc = gap_report(
        open_store(_folder_store(make_store, "c.h5", X, primary, [prompts], names))
    ).to_json()
    expected = _peer_imagenet_metrics(X, prompts, primary)
    assert doc["text_side"] == "unique_class_texts" and doc["n_texts"] == 5
    assert doc["n_text_rows"] == primary.size and doc["templates_per_class"] == 1
    for key, value in expected.items():
        assert doc[key] == pytest.approx(value, abs=1e-12), key
    # the per-row copies it replaces: intra-text cosine pulled towards 1, L2M class-weighted
    copies = _unit(prompts[primary])
    assert doc["l2m"] != pytest.approx(np.linalg.norm(X.mean(0) - copies.mean(0)), abs=1e-6)


def test_several_templates_use_the_normalised_template_mean(make_store, classification, rng):
    X, primary, prompts, names = classification
    second = _unit(prompts + 0.7 * rng.normal(size=prompts.shape))
    second = (3.0 * second).astype(np.float32).astype(np.float64)
    path = _folder_store(make_store, "c.h5", X, primary, [prompts, second], names)
    doc = gap_report(open_store(path)).to_json()
    # ambiguous in the paper (one template there): CLIP's zero-shot classifier, i.e. the
    # mean of the normalised template embeddings, re-normalised, is the class text
    class_text = _unit(_unit(prompts) + _unit(second))
    expected = _peer_imagenet_metrics(X, class_text, primary)
    assert doc["templates_per_class"] == 2 and doc["n_texts"] == 5
    for key, value in expected.items():
        assert doc[key] == pytest.approx(value, abs=1e-12), key
    first = gap_report(open_store(path), captions="first").to_json()
    assert first["l2m"] == pytest.approx(_peer_imagenet_metrics(X, prompts, primary)["l2m"])


def test_class_sizes_and_numbering_do_not_move_the_text_side(make_store, classification):
    X, primary, prompts, names = classification
    base = gap_report(
        open_store(_folder_store(make_store, "a.h5", X, primary, [prompts], names))
    ).to_json()
    keep = np.r_[np.arange(12)[:4], np.arange(12, primary.size)]  # class 0: 12 -> 4 images
    smaller = gap_report(
        open_store(_folder_store(make_store, "b.h5", X[keep], primary[keep], [prompts], names))
    ).to_json()
    assert smaller["intra_text_cosine"] == pytest.approx(base["intra_text_cosine"], abs=1e-15)
    perm = np.array([3, 0, 4, 1, 2])
    renamed = [""] * 5
    for old, new in enumerate(perm):
        renamed[new] = names[old]
    moved = np.empty_like(prompts)
    moved[perm] = prompts
    other = gap_report(
        open_store(_folder_store(make_store, "c.h5", X, perm[primary], [moved], renamed))
    ).to_json()
    for key in ("l2m", "l2i", "mean_paired_cosine", "intra_text_cosine", "rmg"):
        assert other[key] == pytest.approx(base[key], abs=1e-12), key


def test_captioned_stores_keep_every_caption(make_store, rng):
    X = rng.normal(size=(6, 4))
    path = make_store("p.h5", X=X, Y=X + 0.1)
    doc = gap_report(open_store(path), separability=False).to_json()
    assert doc["text_side"] == "captions" and doc["n_texts"] == 6


@pytest.mark.parametrize(
    "captions, rows, primary",
    [
        (["a", "b", "c"], [0, 1, 2], [0, 0, 1]),  # nothing repeats
        (["a", "a", "a"], [0, 1, 2], [0, 0, 1]),  # one text for two classes
        (["a", "a", "b", "c"], [0, 1, 1, 2], [0, 0, 1]),  # image 1 (class 0) has a foreign text
        (["a", "b", "a"], [0, 0, 1], [0, 0, 1]),  # image 1 lacks prompt "b" of its class
        (["a", "a", "b"], [0, 1, 2], [0, -1, 1]),  # an unlabelled image
    ],
)
def test_layout_is_only_recognised_when_it_is_exact(captions, rows, primary):
    assert classification_layout(np.array(captions), np.array(rows), np.array(primary)) is None


def test_cli_labels_the_text_side(make_store, classification, cli):
    X, primary, prompts, names = classification
    path = str(_folder_store(make_store, "c.h5", X, primary, [prompts], names))
    doc = json.loads(cli("gap", path, "--json", "--no-separability").stdout)
    assert doc["text_side"] == "unique_class_texts" and doc["n_texts"] == 5
    table = cli("gap", path, "--no-separability")
    assert table.returncode == 0 and "one per class" in table.stdout


def test_text_side_captions_keeps_the_per_image_copies(make_store, classification, cli):
    X, primary, prompts, names = classification
    path = _folder_store(make_store, "c.h5", X, primary, [prompts], names)
    doc = gap_report(open_store(path), text_side="captions", separability=False).to_json()
    copies = _unit(prompts)[primary]  # one copy per image, each weighed once
    gram = copies @ copies.T
    intra = (gram.sum() - np.trace(gram)) / (gram.size - primary.size)
    assert doc["text_side"] == "captions" and doc["n_texts"] == primary.size
    assert doc["intra_text_cosine"] == pytest.approx(intra, abs=1e-12)
    assert doc["l2m"] == pytest.approx(np.linalg.norm(_unit(X).mean(0) - copies.mean(0)))
    bad = cli("gap", str(path), "--text-side", "prompts")
    assert bad.returncode == 2 and "--text-side" in bad.stderr
