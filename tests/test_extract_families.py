"""Every model family of the mission extracts COCO from local folders, several in one pass.

Tiny random-init checkpoints of the real transformers architectures are saved to folders
and named on the command line exactly as a user names a downloaded checkpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_clip_models import make_tiny_clip, make_tiny_siglip
from tiny_hf_models import make_tiny_blip, make_tiny_blip2, make_tiny_llava

from mgap.engine.extract.request import ExtractRequest
from mgap.engine.extract.run import run_extraction
from mgap.store import open_store


@pytest.fixture
def checkpoints(tmp_path, minilm_dir):
    minilm, root = minilm_dir, tmp_path / "ckpt"
    return {
        "clip": make_tiny_clip(root / "clip"),
        "siglip": make_tiny_siglip(root / "siglip", minilm),
        "blip": make_tiny_blip(root / "blip", minilm),
        "blip2": make_tiny_blip2(root / "blip2", minilm),
        "llava": make_tiny_llava(root / "llava"),
    }


@pytest.mark.slow
def test_five_families_in_one_pass_equal_separate_runs(
    checkpoints, tiny_coco, tmp_path, cli, extract_cli
):
    specs = [
        f"hf:{checkpoints['clip']}",
        f"hf:{checkpoints['siglip']}",
        f"hf:{checkpoints['blip']}",
        f"hf:{checkpoints['blip2']}",
        f"llava:{checkpoints['llava']}",
    ]
    args = ["--batch-size", "4", "--dtype", "float32", "--store-dir", str(tmp_path / "one")]
    args += ["--model-option", f"{specs[-1]}::view=after"]  # one model's own option
    stores = extract_cli.json(*specs, limit=6, args=args)["stores"]
    assert [s["status"] for s in stores] == ["complete"] * 5
    families = []
    for spec, summary in zip(specs, stores, strict=True):
        store = open_store(summary["store"])
        families.append(store.attrs["family"])
        assert store.n_images == 6 and store.n_texts == 30
        assert store.attrs["embedding_image"] and store.attrs["embedding_text"]
        assert cli("verify", summary["store"]).returncode == 0
        alone = tmp_path / "alone" / f"{len(families)}.h5"
        run_extraction(
            ExtractRequest(
                models=[spec],
                dataset="coco",
                data_root=tiny_coco,
                split="train2017",
                limit=6,
                batch_size=3,
                store_dtype="float32",
                model_options={"view": "after"} if spec.startswith("llava:") else {},
                out=alone,
            )
        )  # other batches than the one-pass run: embeddings must not depend on them
        np.testing.assert_allclose(
            store.image_embeddings(), open_store(alone).image_embeddings(), atol=1e-5
        )
        np.testing.assert_allclose(
            store.text_embeddings(), open_store(alone).text_embeddings(), atol=1e-5
        )
    assert families == ["hf", "hf", "blip", "blip2", "llava"]
    assert "after the LLM" in open_store(stores[-1]["store"]).attrs["embedding_image"]
    siglip = open_store(stores[1]["store"])
    assert "max_length" in siglip.attrs["embedding_text"]
