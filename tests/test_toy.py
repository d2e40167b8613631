"""The toy CLIP: learns on a small budget, saves without pickle, reloads, random twin is seeded."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.models import load_model
from mgap.engine.toy.config import TrainConfig
from mgap.engine.toy.model import ToyArchitecture, ToyPreprocess, ToyTokenizer, pixels_to_input
from mgap.engine.toy.storage import build_model, load_toy, save_toy, toy_dir
from mgap.engine.toy.train import TrainResult, train_toy

BUDGET = TrainConfig(epochs=3, n_train=400, n_test=150, batch_size=32, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small toy trained and saved as toy:t in a private cache directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MGAP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        result = train_toy(BUDGET)
        save_toy("t", result.model, result.config, result.metrics)
        yield result


def test_small_budget_beats_chance_on_held_out_images(trained):
    metrics = trained.metrics
    assert metrics["n_test"] == 150
    assert metrics["loss_last_epoch"] < metrics["loss_first_epoch"] < metrics["chance_loss"] + 0.5
    attributes = metrics["zero_shot_attribute_accuracy"]
    chance = metrics["attribute_chance_accuracy"]
    # background and colour are learned first; each is well above chance on held-out images
    assert attributes["background"] > 2 * chance["background"]
    assert attributes["colour"] > 2 * chance["colour"]
    assert metrics["zero_shot_shape_accuracy"] == pytest.approx(_shape_accuracy(trained), abs=1e-9)


def _shape_accuracy(trained) -> float:
    """CLIP zero-shot, written out: class vector = normalised mean of the normalised prompt
    embeddings; each held-out image takes the class of highest cosine."""
    from mgap.engine.datasets.synthetic import SHAPES
    from mgap.engine.datasets.synthetic import load as load_synthetic
    from mgap.engine.toy.train import render_pixels

    test = load_synthetic(None, "test", kind="synthetic", **BUDGET.dataset_options("test"))
    model, tokenizer = trained.model, trained.tokenizer
    with torch.inference_mode():
        images = model.encode_image(
            pixels_to_input(render_pixels(test, trained.architecture.image_size))
        ).numpy()
        classes = []
        for shape in SHAPES:
            prompts = model.encode_text(tokenizer([t.format(shape) for t in test.prompt_templates]))
            prompts = prompts.numpy() / np.linalg.norm(prompts.numpy(), axis=1, keepdims=True)
            mean = prompts.mean(0)
            classes.append(mean / np.linalg.norm(mean))
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    predicted = np.argmax(images @ np.stack(classes).T, axis=1)
    truth = np.array([SHAPES.index(r.primary) for r in test.records])
    return float(np.mean(predicted == truth))


def test_saved_as_safetensors_and_json_without_pickle(trained):
    from safetensors.torch import load_file

    folder = toy_dir("t")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
    ]
    state = load_file(str(folder / "model.safetensors"))
    for key, value in trained.model.state_dict().items():
        assert torch.equal(state[key], value), key
    config = json.loads((folder / "config.json").read_text())
    assert config["training"]["caption_detail"] == BUDGET.caption_detail
    assert config["training"]["temperature"] == BUDGET.temperature
    assert config["random_seed"] == BUDGET.seed
    assert ToyArchitecture.from_dict(config["architecture"]) == trained.architecture
    assert json.loads((folder / "metrics.json").read_text())["seconds"] > 0


def test_adapter_reproduces_the_trained_model(trained):
    model = load_model("toy:t", "cpu")
    assert model.has_image and model.has_text and model.family == "toy"
    texts = ["a photo of a red circle.", "a star."]
    with torch.inference_mode():
        expected = trained.model.eval().encode_text(trained.tokenizer(texts))
        assert torch.allclose(model.encode_texts(texts), expected)
        from PIL import Image

        image = Image.new("RGB", (64, 64), (200, 30, 30))
        pre = pickle.loads(pickle.dumps(model.image_preprocess()))
        batch = torch.stack([pre(image)])
        assert torch.allclose(model.encode_images(batch), trained.model.encode_image(batch))
    assert model.describe()["weights"].endswith("model.safetensors")


def test_random_twin_is_the_seeded_initialisation(trained):
    a = load_model("toy:t@random", "cpu").toy.model.state_dict()
    b = load_model("toy:t@random", "cpu").toy.model.state_dict()
    start, _ = build_model(trained.architecture, trained.config["vocabulary"], 0.07, BUDGET.seed)
    other = load_model("toy:t@random:5", "cpu").toy.model.state_dict()
    for key, value in a.items():
        assert torch.equal(value, b[key]) and torch.equal(value, start.state_dict()[key])
    weights = "image_proj.weight"
    assert not torch.equal(a[weights], other[weights])
    assert not torch.equal(a[weights], trained.model.state_dict()[weights])
    assert load_model("toy:t@random", "cpu").describe()["weights"] == "random(seed=0)"


def test_missing_or_bad_toy_specs(trained):
    with pytest.raises(ModelUnavailableError, match="train-toy --name nope"):
        load_model("toy:nope", "cpu")
    with pytest.raises(UsageError, match="unknown toy model tag"):
        load_model("toy:t@openai", "cpu")
    with pytest.raises(UsageError, match="not valid"):
        load_toy("../escape")


def test_tokenizer_pads_and_marks_unknown_words():
    tokenizer = ToyTokenizer(["a", "circle", "red"], max_tokens=4)
    ids = tokenizer(["A red circle!", "a zebra", ""])
    assert ids.tolist() == [[2, 4, 3, 0], [2, 1, 0, 0], [1, 0, 0, 0]]


def test_preprocess_resizes_and_scales():
    from PIL import Image

    out = ToyPreprocess(32)(Image.new("RGB", (64, 64), (255, 0, 128)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert np.allclose(out[:, 0, 0].numpy(), [1.0, -1.0, 128 / 127.5 - 1.0], atol=1e-6)


def test_training_is_deterministic_for_a_seed():
    tiny = TrainConfig(epochs=1, n_train=48, n_test=8, batch_size=16, seed=3)
    a, b = train_toy(tiny), train_toy(tiny)
    assert a.metrics["loss_per_epoch"] == b.metrics["loss_per_epoch"]
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_cli_train_toy_usage_errors(cli):
    bad = cli("train-toy", "--temperature", "0")
    assert bad.returncode == 2 and "temperature" in bad.stderr
    values = cli("train-toy", "--values", "0.1,0.2")
    assert values.returncode == 2 and "--sweep" in values.stderr
    sweep = cli("train-toy", "--sweep", "depth")
    assert sweep.returncode == 2 and "unknown sweep" in sweep.stderr
    assert "Traceback" not in bad.stderr + values.stderr + sweep.stderr


def test_sweep_trains_one_toy_per_value_and_measures_its_gap(trained):
    from mgap.engine.measures.gap import gap_metrics
    from mgap.engine.toy.storage import toy_exists
    from mgap.engine.toy.sweep import held_out_embeddings, run_sweep

    base = TrainConfig(epochs=1, n_train=48, n_test=12, batch_size=16, seed=1)
    doc = run_sweep("temperature", [0.05, 0.5], base)
    assert doc.sweep == "temperature" and [r["temperature"] for r in doc.rows] == [0.05, 0.5]
    assert [r["model"] for r in doc.rows] == [
        "toy:sweep-temperature-0.05",
        "toy:sweep-temperature-0.5",
    ]
    assert toy_exists("sweep-temperature-0.5")
    reloaded = load_toy("sweep-temperature-0.5")
    assert reloaded.config["training"]["temperature"] == 0.5
    result = TrainResult(reloaded.model, reloaded.tokenizer, reloaded.architecture, {}, {})
    X, Y, rows = held_out_embeddings(result, TrainConfig(**{**base.__dict__, "temperature": 0.5}))
    assert X.shape == (12, 64) and Y.shape == (36, 64)
    assert doc.rows[1]["l2m"] == pytest.approx(gap_metrics(X, Y, rows)["l2m"], abs=1e-6)
