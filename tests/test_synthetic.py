"""The synthetic dataset: seeded, deterministic, picklable, with a documented caption-detail knob."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mgap.core.errors import UsageError
from mgap.engine.datasets import load_manifest
from mgap.engine.datasets.synthetic import ATTRIBUTES, SHAPES, SyntheticManifest, vocabulary


def _pixels(manifest, i):
    return np.asarray(manifest.load_image(i))


def test_same_seed_gives_identical_pixels_and_captions():
    a = load_manifest("synthetic", None, "test", n="20", seed="3")
    b = load_manifest("synthetic", None, "test", n=20, seed=3)
    assert [r.captions for r in a.records] == [r.captions for r in b.records]
    assert [r.attributes for r in a.records] == [r.attributes for r in b.records]
    for i in range(20):
        assert np.array_equal(_pixels(a, i), _pixels(b, i))
    other = load_manifest("synthetic", None, "test", n=20, seed=4)
    assert any(not np.array_equal(_pixels(a, i), _pixels(other, i)) for i in range(20))


def test_splits_defaults_and_layout():
    test = load_manifest("synthetic", None, None)
    train = load_manifest("synthetic", None, "train", n=30)
    assert test.split == "test" and len(test.records) == 500
    assert not {r.id for r in train.records} & {r.id for r in test.records}
    assert test.category_names == list(SHAPES)
    assert set(test.label_prompts) == set(ATTRIBUTES)
    record = test.records[0]
    assert record.categories == [record.primary] and record.primary in SHAPES
    assert set(record.attributes) == set(ATTRIBUTES) and len(record.captions) == 3
    image = test.load_image(0)
    assert image.size == (64, 64) and image.mode == "RGB"
    primary, labels = test.label_arrays()
    assert (primary >= 0).all() and (labels.sum(1) == 1).all()


@pytest.mark.parametrize("detail,count", [(0.0, 0), (0.25, 1), (0.5, 2), (1.0, 4)])
def test_caption_detail_sets_how_many_attributes_are_named(detail, count):
    manifest = load_manifest("synthetic", None, "test", n=40, caption_detail=str(detail))
    for record in manifest.records:
        for caption in record.captions:
            assert record.primary in caption
            named = sum(
                f" {value} " in f" {caption.rstrip('.')} " for value in record.attributes.values()
            )
            assert named == count, caption


def test_caption_detail_changes_captions_not_images():
    low = load_manifest("synthetic", None, "test", n=10, caption_detail=0.0)
    high = load_manifest("synthetic", None, "test", n=10, caption_detail=1.0)
    assert [r.attributes for r in low.records] == [r.attributes for r in high.records]
    assert all(a.captions != b.captions for a, b in zip(low.records, high.records, strict=True))
    assert np.array_equal(_pixels(low, 5), _pixels(high, 5))


def test_limit_keeps_rendering_and_prompts_and_pickles():
    manifest = load_manifest("synthetic", None, "test", limit=5, n=50)
    assert isinstance(manifest, SyntheticManifest) and len(manifest.records) == 5
    assert manifest.label_prompts
    clone = pickle.loads(pickle.dumps(manifest))
    assert np.array_equal(_pixels(clone, 4), _pixels(manifest, 4))


def test_every_caption_and_prompt_word_is_in_the_vocabulary():
    words = set(vocabulary())
    manifest = load_manifest("synthetic", None, "train", n=50, caption_detail=1.0)
    texts = [c for r in manifest.records for c in r.captions]
    texts += [t.format(s) for t in manifest.prompt_templates for s in SHAPES]
    for key, templates in manifest.label_prompts.items():
        texts += [t.format(v) for t in templates for v in ATTRIBUTES[key]]
    import re

    assert {w for t in texts for w in re.findall(r"[a-z]+", t)} <= words


@pytest.mark.parametrize(
    "options",
    [{"caption_detail": "1.5"}, {"n": "many"}, {"n": 0}, {"colour": "red"}],
)
def test_bad_options_are_usage_errors(options):
    with pytest.raises(UsageError):
        load_manifest("synthetic", None, "test", **options)


def test_unknown_split_is_a_usage_error():
    with pytest.raises(UsageError, match="no split"):
        load_manifest("synthetic", None, "val")
