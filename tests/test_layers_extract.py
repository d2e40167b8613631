"""`mgap extract --layers`: per-layer states of a tiny random open_clip model on tiny COCO,
checked against a forward pass run block by block in this file, the lens against the
stored embedding, resume against an uninterrupted run, and the one-line refusals."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_COCO, _need
from PIL import Image

from mgap.core.errors import UsageError
from mgap.engine.extract.layer_plan import parse_layers, plan_layers
from mgap.engine.extract.request import ExtractRequest
from mgap.engine.extract.run import run_extraction
from mgap.engine.models.base import EmbeddingModel
from mgap.engine.specs import parse_model_spec
from mgap.store import open_store
from mgap.store.writer import StoreWriter

ARCH = "mgap-tiny-layers"
SPEC = f"open_clip:{ARCH}@random"
N = 10  # images; 3 image blocks of 4 rows, captions in the same blocks


@pytest.fixture(scope="module")
def tiny_arch():
    from open_clip import factory

    config = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 3,
            "width": 32,
            "head_width": 16,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 24,
            "heads": 2,
            "layers": 2,
        },
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(factory._MODEL_CONFIGS, ARCH, config)
        yield ARCH


def _extract(root, out, layers="all", space=None, **kwargs):
    request = ExtractRequest(
        models=[SPEC],
        dataset="coco",
        data_root=root,
        split="train2017",
        limit=N,
        out=out,
        store_dtype="float32",
        block_rows=4,
        batch_size=3,
        num_workers=0,
        decode="exact",
        device="cpu",
        layers=layers,
        layer_space=space,
        **kwargs,
    )
    return run_extraction(request)


@pytest.fixture(scope="module")
def layer_store(tiny_arch, tmp_path_factory):
    out = tmp_path_factory.mktemp("layers") / "s.h5"
    (summary,) = _extract(_need(TINY_COCO), out)
    assert summary.status == "complete"
    return out


def _reference_model():
    """The same random init, built here without mgap."""
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    return model.eval(), preprocess, open_clip.get_tokenizer(ARCH)


def _blocks(transformer, x, mask=None):
    """Every hidden state: the input, then each block's output, run one block at a time."""
    states = [x]
    h = x if transformer.batch_first else x.transpose(0, 1)
    for block in transformer.resblocks:
        h = block(h, attn_mask=mask)
        states.append(h if transformer.batch_first else h.transpose(0, 1))
    return states


def _image_reference(model, preprocess, paths):
    v = model.visual
    pixels = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
    x = v.conv1(pixels).flatten(2).transpose(1, 2)
    cls = v.class_embedding.view(1, 1, -1).expand(x.shape[0], 1, -1)
    x = v.ln_pre(torch.cat([cls, x], dim=1) + v.positional_embedding)
    raw = [h[:, 0] for h in _blocks(v.transformer, x)]
    return raw, [v.ln_post(r) @ v.proj for r in raw]


def _text_reference(model, tokenizer, captions):
    tokens = tokenizer(captions)
    x = model.token_embedding(tokens) + model.positional_embedding
    eot = tokens.argmax(dim=-1)
    raw = [
        h[torch.arange(len(captions)), eot] for h in _blocks(model.transformer, x, model.attn_mask)
    ]
    return raw, [model.ln_final(r) @ model.text_projection for r in raw]


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float32), b.numpy(), rtol=1e-4, atol=2e-5)


def test_layers_equal_a_hand_run_forward_pass(layer_store, tiny_coco):
    store = open_store(layer_store)
    model, preprocess, tokenizer = _reference_model()
    paths = [tiny_coco / p for p in store.image_paths]
    with torch.no_grad():
        image_raw, image_lens = _image_reference(model, preprocess, paths)
        text_raw, text_lens = _text_reference(model, tokenizer, list(store.captions))
    assert store.layer_set("image").layers == tuple(range(4))  # 3 blocks: layers 0..3
    assert store.layer_set("text").layers == tuple(range(3))
    assert store.layer_set("image").widths == {"raw": 32, "lens": 16}
    assert store.layer_set("text").widths == {"raw": 24, "lens": 16}
    for k in range(4):
        _close(store.layer_embeddings("image", k, "raw", np.float32), image_raw[k])
        _close(store.layer_embeddings("image", k, "lens", np.float32), image_lens[k])
    for k in range(3):
        _close(store.layer_embeddings("text", k, "raw", np.float32), text_raw[k])
        _close(store.layer_embeddings("text", k, "lens", np.float32), text_lens[k])


def test_last_layer_under_the_lens_is_the_embedding(layer_store):
    store = open_store(layer_store)
    for side, emb in (("image", store.image_embeddings()), ("text", store.text_embeddings())):
        last = store.layer_embeddings(side, -1, "lens", np.float32)
        np.testing.assert_allclose(last, emb, rtol=0, atol=1e-5)
        assert not np.allclose(store.layer_embeddings(side, 0, "lens", np.float32), emb)


def test_store_records_definitions_and_verifies(layer_store, cli):
    with h5py.File(layer_store, "r") as f:
        group = f["images/layers"]
        assert group.attrs["pooling"].startswith("class token of each residual block")
        assert group.attrs["lens"] == "ln_post then proj"
        assert f["texts/layers"].attrs["lens"] == "ln_final then text_projection"
        sums = f["checksums/images.layers.raw.2"][...]
        assert sums.shape == (3,) and (sums != 0).all()
        assert f["checksums/texts.layers.lens.1"].shape == f["checksums/texts.embeddings"].shape
    assert cli("verify", str(layer_store)).returncode == 0
    doc = json.loads(cli("info", str(layer_store), "--json").stdout)
    assert doc["layers"]["image"] == {
        "count": 4,
        "layers": [0, 1, 2, 3],
        "spaces": ["raw", "lens"],
        "widths": {"raw": 32, "lens": 16},
        "pooling": "class token of each residual block's output (layer 0: the input to block "
        "1, after ln_pre)",
        "lens": "ln_post then proj",
    }
    text = cli("info", str(layer_store)).stdout
    assert "image layers" in text and "ln_final then text_projection" in " ".join(text.split())


def test_a_damaged_layer_block_fails_verify(layer_store, tmp_path, cli):
    damaged = tmp_path / "d.h5"
    damaged.write_bytes(layer_store.read_bytes())
    with h5py.File(damaged, "r+") as f:
        f["texts/layers/raw/1"][0, 0] += 1.0
    out = cli("verify", str(damaged))
    assert out.returncode == 1 and "texts/layers/raw/1: 1 blocks fail their checksum" in out.stderr


def test_a_list_and_one_space_store_only_those(layer_store, tiny_arch, tiny_coco, tmp_path):
    out = tmp_path / "l.h5"
    _extract(tiny_coco, out, layers="0,-1", space="raw")
    store, whole = open_store(out), open_store(layer_store)
    assert store.layer_set("image").layers == (0, 3) and store.layer_set("image").spaces == ("raw",)
    assert store.layer_set("text").layers == (0, 2) and store.layer_set("image").lens == ""
    for side, k in (("image", 0), ("image", 3), ("text", 2)):
        np.testing.assert_array_equal(
            store.layer_embeddings(side, k, "raw"), whole.layer_embeddings(side, k, "raw")
        )


def _interrupt(monkeypatch, method: str, after: int) -> None:
    """`StoreWriter.method` raises on its call number `after` + 1, as a kill would stop it."""
    original = getattr(StoreWriter, method)
    calls = []

    def write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, method, write)


def test_interrupted_runs_resume_to_bit_equal_layers(layer_store, tiny_arch, tiny_coco, tmp_path):
    out = tmp_path / "r.h5"
    for method in ("write_texts", "write_images"):  # stopped in the captions, then the images
        with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
            _interrupt(mp, method, after=1)
            _extract(tiny_coco, out)
        assert open_store(out).status != "complete"
    (summary,) = _extract(tiny_coco, out)
    assert summary.status == "complete" and "resumed" in summary.note
    resumed, whole = open_store(out), open_store(layer_store)
    for side, count in (("image", 4), ("text", 3)):
        for space in ("raw", "lens"):
            for k in range(count):
                a = resumed.layer_embeddings(side, k, space, np.float32)
                b = whole.layer_embeddings(side, k, space, np.float32)
                assert a.tobytes() == b.tobytes(), (side, space, k)
    (again,) = _extract(tiny_coco, out, layers=None)  # a plain rerun leaves it as it is
    assert again.note == "already complete"


def test_resume_with_other_layers_is_refused(layer_store, tiny_arch, tiny_coco, tmp_path):
    out = tmp_path / "o.h5"
    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        _interrupt(mp, "write_images", after=1)
        _extract(tiny_coco, out)
    with pytest.raises(Exception, match="started with per-layer states") as err:
        _extract(tiny_coco, out, layers="0,1")
    assert "--layers" in err.value.hint


@pytest.mark.parametrize(
    ("layers", "space", "message"),
    [
        ("0,x", None, "is not 'all' or a comma-separated list"),
        ("1,,2", None, "is not 'all' or a comma-separated list"),
        ("2,2", None, "names a layer twice"),
        ("all", "proj", "--layer-space must be raw, lens or both"),
        (None, "raw", "--layer-space needs --layers"),
    ],
)
def test_bad_layer_syntax_is_refused(layers, space, message):
    with pytest.raises(UsageError, match=message):
        parse_layers(layers, space)


def test_out_of_range_layer_is_refused_before_any_store(tiny_arch, tiny_coco, tmp_path):
    out = tmp_path / "x.h5"
    with pytest.raises(UsageError, match=r"--layers 99 is out of range .* 4 hidden states"):
        _extract(tiny_coco, out, layers="0,99")
    with pytest.raises(UsageError, match=r"--layers -5 is out of range"):
        _extract(tiny_coco, out, layers="-5")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_refusals_are_one_line_exit_2(tiny_coco, tmp_path, cli):
    base = [
        "extract",
        "-m",
        "open_clip:ViT-S-32@random",
        "-d",
        "coco",
        "--data-root",
        str(tiny_coco),
    ]
    base += ["--split", "train2017", "--limit", "2", "--out", str(tmp_path / "c.h5")]
    for extra, message in (
        (["--layers", "99"], "--layers 99 is out of range for the image tower"),
        (["--layers", "0;4"], "is not 'all' or a comma-separated list"),
        (["--layers", "all", "--nproc", "2"], "--layers cannot be combined with --nproc"),
    ):
        out = cli(*base, *extra)
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "c.h5").exists()


class _NoLayers(EmbeddingModel):
    """A family that keeps the base contract's refusal (the toy family does)."""

    family = "plain"
    embedding_image = "encode_images"

    def provenance(self) -> dict[str, object]:
        return {"weights": "none", "preprocessing": ""}


def test_a_family_without_layers_is_refused():
    model = _NoLayers(parse_model_spec("toy:plain"))
    with pytest.raises(
        UsageError, match=r"toy:plain does not expose per-layer states \(--layers\)"
    ):
        plan_layers(model, parse_layers("all", None))
    assert plan_layers(model, None) == {}
