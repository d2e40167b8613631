"""`meru:PATH` on a tiny random-init MERU written in MERU's key layout (tests/tiny_meru.py).

The reference forward pass below is written out with plain torch ops and the published
formulas (MERU, Desai et al. 2023, `meru/models.py` and `meru/lorentz.py`); it never calls
mgap's modules.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent))
import tiny_meru  # noqa: E402

from mgap.core.errors import ModelUnavailableError, UsageError  # noqa: E402
from mgap.engine.models import load_model  # noqa: E402
from mgap.store import open_store  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_meru.write_tiny_meru(tmp_path_factory.mktemp("meru"))


@pytest.fixture(scope="module")
def model(ckpt):
    return load_model(f"meru:{ckpt}")


@pytest.fixture(scope="module")
def image():
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, (180, 260, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _exp_map0(v: np.ndarray, c: float) -> np.ndarray:
    """Space part of exp at the origin (MERU eq. 4): sinh(√c‖v‖) v / (√c‖v‖)."""
    r = np.sqrt(c) * np.linalg.norm(v, axis=-1, keepdims=True)
    return np.sinh(r) * v / r


def _reference_text(sd: dict, tokens: list[int]) -> np.ndarray:
    """MERU's text tower on one unpadded token list, written out op by op."""
    F = torch.nn.functional
    w, heads = tiny_meru.TEXT_WIDTH, tiny_meru.TEXT_HEADS
    t = torch.tensor(tokens)
    x = sd["textual.token_embed.weight"][t] + sd["textual.posit_embed"][: len(tokens)]
    n = len(tokens)
    causal = torch.triu(torch.full((n, n), float("-inf")), 1)
    for i in range(tiny_meru.TEXT_LAYERS):
        p = f"textual.resblocks.{i}."
        h = F.layer_norm(x, (w,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        q, k, v = (h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]).chunk(3, -1)
        q, k, v = (z.view(n, heads, w // heads).transpose(0, 1) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(1, 2) / (w // heads) ** 0.5 + causal, dim=-1)
        a = (att @ v).transpose(0, 1).reshape(n, w)
        x = x + a @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (w,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = F.gelu(h @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"])
        x = x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (w,), sd["textual.ln_final.weight"], sd["textual.ln_final.bias"])
    feat = x[int(np.argmax(tokens))] @ sd["textual_proj.weight"].T
    return (feat * sd["textual_alpha"].exp()).double().numpy()


def _reference_image(sd: dict, image) -> np.ndarray:
    """timm ViT (MERU builds its tower with timm) + MERU's normalisation, projection, alpha."""
    import timm
    from torchvision import transforms as T

    vit = timm.create_model(
        "vit_small_patch16_224",
        pretrained=False,
        num_classes=0,
        global_pool="token",
        norm_layer=torch.nn.LayerNorm,
        embed_dim=tiny_meru.VIT_WIDTH,
        depth=tiny_meru.VIT_DEPTH,
        num_heads=tiny_meru.VIT_HEADS,
    ).eval()
    vit.load_state_dict({k[len("visual.") :]: v for k, v in sd.items() if k.startswith("visual.")})
    transform = T.Compose(
        [T.Resize(224, T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor()]
    )
    pixels = (transform(image) - sd["pixel_mean"]) / sd["pixel_std"]
    with torch.no_grad():
        feat = vit(pixels[None])[0] @ sd["visual_proj.weight"].T
    return (feat * sd["visual_alpha"].exp()).double().numpy()


def test_embeddings_match_a_reference_forward_pass(model, image):
    from open_clip.tokenizer import SimpleTokenizer

    sd = tiny_meru.tiny_state_dict()
    c = float(sd["curv"].exp())
    caption = "Two men wearing aprons working in a commercial-style kitchen."
    tokens = SimpleTokenizer()([caption])[0]
    tokens = tokens[: int(tokens.argmax()) + 1].tolist()  # SOT ... EOT, no padding
    with torch.no_grad():
        text = model.encode_texts([caption, "a much longer second caption " * 3])[0].numpy()
        img = model.encode_images(model.image_preprocess()(image)[None])[0].numpy()
    with torch.no_grad():
        ref_text = _exp_map0(_reference_text(sd, tokens), c)
    ref_image = _exp_map0(_reference_image(sd, image), c)
    assert text == pytest.approx(ref_text, rel=1e-4, abs=1e-5)
    assert img == pytest.approx(ref_image, rel=1e-4, abs=1e-5)
    assert model.describe()["curvature"] == pytest.approx(tiny_meru.CURVATURE, rel=1e-6)


def test_state_dict_wrappers_load_alike(ckpt, model, tmp_path, image):
    pixels = model.image_preprocess()(image)[None]
    with torch.no_grad():
        want = model.encode_images(pixels)
    for wrap in ("flat", "module"):
        path = tiny_meru.write_tiny_meru(tmp_path, name=f"{wrap}.pth", wrap=wrap)
        with torch.no_grad():
            got = load_model(f"meru:{path}").encode_images(pixels)
        assert torch.equal(got, want), wrap


def test_clip_baseline_is_euclidean_and_unit_norm(tmp_path):
    path = tiny_meru.write_tiny_meru(tmp_path, "clip", name="clip_tiny.pth")
    clip = load_model(f"meru:{path}")
    with torch.no_grad():
        text = clip.encode_texts(["a cat", "a dog on a mat"])
    assert clip.describe()["geometry"] == "euclidean"
    assert text.norm(dim=-1).numpy() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_architecture_sources(tmp_path):
    path = tiny_meru.write_tiny_meru(tmp_path, name="unnamed.pth", config=False)
    with pytest.raises(UsageError, match="cannot tell the architecture"):
        load_model(f"meru:{path}")
    with pytest.raises(UsageError, match="vit_s, vit_s:clip"):
        load_model(f"meru:{path}", arch="vit_x")
    # the public file names carry the arch: meru_vit_b.pth is read as a ViT-B MERU
    named = tiny_meru.write_tiny_meru(tmp_path, name="meru_vit_b.pth", config=False)
    with pytest.raises(ModelUnavailableError) as err:
        load_model(f"meru:{named}")
    message = err.value.one_line()
    assert "file name meru_vit_b.pth" in message and "looks like arch=vit_s" in message


def test_wrong_arch_names_the_keys(ckpt):
    with pytest.raises(ModelUnavailableError) as err:
        load_model(f"meru:{ckpt}", arch="vit_s")  # 12 blocks expected, the file has 2
    message = err.value.one_line()
    assert "missing textual.resblocks.10.attn.in_proj_bias" in message and "more;" in message
    assert "looks like arch=vit_s with 2 ViT and 2 text blocks" in message
    assert "\n" not in message
    with pytest.raises(ModelUnavailableError, match="unexpected curv, textual_alpha"):
        load_model(f"meru:{ckpt}", arch="vit_s:clip")


def test_bad_checkpoint_files_get_one_line(ckpt, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(ModelUnavailableError, match="is not a readable PyTorch checkpoint"):
        load_model(f"meru:{truncated}", arch="vit_s")
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(ckpt.read_bytes())
    with pytest.raises(ModelUnavailableError, match="vit_b.: missing textual.resblocks.10"):
        load_model(f"meru:{wrong}", arch="vit_b")
    wider = tiny_meru.tiny_config() | {"vit_width": 768}
    wrong.with_suffix(".json").write_text(json.dumps(wider), encoding="utf-8")
    with pytest.raises(ModelUnavailableError, match=r"visual.cls_token has shape \(1, 1, 384\)"):
        load_model(f"meru:{wrong}")
    tensors = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensors)
    with pytest.raises(ModelUnavailableError, match="holds no state dict"):
        load_model(f"meru:{tensors}", arch="vit_s")


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, cli, tiny_coco):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    code = tmp_path / "code.pth"
    torch.save({"model": Payload()}, code)
    args = ["extract", "--model", f"meru:{code}", "--model-option", "arch=vit_s"]
    args += ["--dataset", "coco", "--split", "train2017", "--data-root", str(tiny_coco)]
    done = cli(*args, "--out", str(tmp_path / "x.h5"))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds Python objects beyond tensors" in lines[0], done.stderr
    assert "weights_only=True" in lines[0] and "Traceback" not in done.stderr
    assert not marker.exists()


def test_extract_tiny_coco_in_one_pass_on_the_hyperboloid(ckpt, tmp_path, cli, tiny_coco):
    out = tmp_path / "meru.h5"
    done = cli(
        "extract",
        "--model",
        f"meru:{ckpt}",
        "--dataset",
        "coco",
        "--split",
        "train2017",
        "--data-root",
        str(tiny_coco),
        "--out",
        str(out),
        "--dtype",
        "float32",
        "--json",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stores"][0]["status"] == "complete"
    store = open_store(out)
    n_images = len(
        json.loads((tiny_coco / "annotations/captions_train2017.json").read_text())["images"]
    )
    assert store.n_images == n_images and store.geometry == "lorentz"
    c = store.curvature
    assert c == pytest.approx(tiny_meru.CURVATURE, rel=1e-6)
    for x in (store.image_embeddings(), store.text_embeddings()):
        x_time = np.sqrt(1.0 / c + np.sum(x * x, axis=1))  # the time part from the space part
        lorentz = np.sum(x * x, axis=1) - x_time**2
        assert lorentz == pytest.approx(np.full(len(x), -1.0 / c), abs=1e-5)
        assert np.all(np.linalg.norm(x, axis=1) > 0.1)  # lifted, not collapsed at the origin
