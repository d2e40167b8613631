"""Build a store with COCO train2017's shape through `mgap import`, as a new user would.

118,287 images, 591,435 captions (5 per image), d = 512, 80 categories; 1.45 GB
of float32 embeddings. The embeddings are synthetic but shaped
like CLIP's: a category signal shared by both sides, per-image content, a modality offset
(the gap) and noise, so recall, L2M and the category tables land in realistic ranges.

    python benchmarks/scale_store.py /work/bigstore            # writes coco-train-shape.h5
    python benchmarks/scale_store.py /work/bigstore --layers 13 [--n 40000]

`--layers N` also writes a copy with N per-layer `lens` arrays per side, in the layout of
docs/store-format.md "Per-layer states" and the embeddings' dtype: layer k drifts from
noise towards the embeddings, and the last layer is the embeddings themselves.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

N_IMAGES, PER_IMAGE, DIM, N_CATEGORIES = 118_287, 5, 512, 80


def write_arrays(folder: Path, n_images: int = N_IMAGES, seed: int = 0) -> dict[str, Path]:
    """The .npy/.txt inputs of `mgap import`, written in blocks (peak memory ~ one side)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    category = rng.integers(0, N_CATEGORIES, n_images)
    centroids = rng.standard_normal((N_CATEGORIES, DIM), dtype=np.float32)
    image_offset = 1.2 * rng.standard_normal(DIM, dtype=np.float32)
    text_offset = 1.2 * rng.standard_normal(DIM, dtype=np.float32)
    paths = {
        "image": folder / "image.npy",
        "text": folder / "text.npy",
        "rows": folder / "caption_image_row.txt",
        "categories": folder / "categories.txt",
    }
    images = np.lib.format.open_memmap(paths["image"], "w+", np.float32, (n_images, DIM))
    texts = np.lib.format.open_memmap(paths["text"], "w+", np.float32, (n_images * PER_IMAGE, DIM))
    block = 8192
    for lo in range(0, n_images, block):
        hi = min(lo + block, n_images)
        content = 0.9 * centroids[category[lo:hi]] + 0.5 * rng.standard_normal(
            (hi - lo, DIM), dtype=np.float32
        )
        images[lo:hi] = (
            content + image_offset + 0.8 * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        )
        rep = np.repeat(content, PER_IMAGE, axis=0)
        texts[lo * PER_IMAGE : hi * PER_IMAGE] = (
            rep + text_offset + 1.1 * rng.standard_normal(rep.shape, dtype=np.float32)
        )
    images.flush()
    texts.flush()
    del images, texts
    rows = np.repeat(np.arange(n_images), PER_IMAGE)
    paths["rows"].write_text("\n".join(map(str, rows)) + "\n")
    names = [f"category{c:02d}" for c in range(N_CATEGORIES)]
    paths["categories"].write_text("\n".join(names[c] for c in category) + "\n")
    return paths


def build_store(folder: Path, n_images: int = N_IMAGES) -> Path:
    """Write the arrays and run `mgap import` on them; returns the store path."""
    out = folder / ("coco-train-shape.h5" if n_images == N_IMAGES else f"scale-{n_images}.h5")
    if out.exists():
        return out
    paths = write_arrays(folder / f"arrays-{n_images}", n_images)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mgap",
            "import",
            "--image",
            str(paths["image"]),
            "--text",
            str(paths["text"]),
            "--caption-image-row",
            str(paths["rows"]),
            "--categories",
            str(paths["categories"]),
            "--name",
            "coco-train-shape",
            "--out",
            str(out),
        ],
        check=True,
    )
    return out


def class_prompts(seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(class names, one prompt embedding per class) for the store of `write_arrays(seed)`:
    its category centroids seen through the text side (offset and caption noise), as a
    class prompt "a photo of a <class>" would land."""
    rng = np.random.default_rng(seed)
    rng.integers(0, N_CATEGORIES, N_IMAGES)  # the same draws as write_arrays
    centroids = rng.standard_normal((N_CATEGORIES, DIM), dtype=np.float32)
    rng.standard_normal(DIM, dtype=np.float32)  # image offset
    text_offset = 1.2 * rng.standard_normal(DIM, dtype=np.float32)
    noise = np.random.default_rng(seed + 1).standard_normal((N_CATEGORIES, DIM))
    prompts = 0.9 * centroids + text_offset + 1.1 * noise.astype(np.float32)
    return [f"category{c:02d}" for c in range(N_CATEGORIES)], prompts


def build_prompt_store(folder: Path) -> Path:
    """A copy of the COCO-train-shaped store with class prompt embeddings (for `zeroshot`;
    `mgap import` writes none). The original store is left as it is."""
    from mgap.store.writer import StoreWriter

    out = folder / "coco-train-shape-prompts.h5"
    if out.exists():
        return out
    tmp = out.with_name(out.name + ".creating")
    shutil.copyfile(build_store(folder), tmp)
    StoreWriter(tmp).write_prompts("category", *class_prompts())
    tmp.replace(out)
    return out


def _write_layer(f, side: str, source, layer: int, n_layers: int, rng) -> None:
    """Layer `layer` of `side`: w·embedding + (1 − w)·noise with w = layer/(N − 1), in blocks
    of the embeddings' rows and in their dtype."""
    from mgap.store.layers import dataset_name

    out = f.create_dataset(
        dataset_name(side, "lens", layer), shape=source.shape, dtype=source.dtype
    )
    w = layer / (n_layers - 1) if n_layers > 1 else 1.0
    block = 65536
    for lo in range(0, source.shape[0], block):
        rows = source[lo : lo + block].astype(np.float32)
        if w < 1:
            rows = w * rows + (1 - w) * 1.5 * rng.standard_normal(rows.shape, dtype=np.float32)
        out[lo : lo + block] = rows.astype(source.dtype)


def add_layers(store: Path, n_layers: int, seed: int = 1) -> Path:
    """A copy of `store` with `n_layers` lens layers per side (the original is left as it
    is); written under a `.creating` name and renamed when whole."""
    import h5py

    from mgap.store import schema as S
    from mgap.store.layers import write_layer_attrs

    out = store.with_name(f"{store.stem}-layers{n_layers}.h5")
    if out.exists():
        return out
    tmp = out.with_name(out.name + ".creating")
    shutil.copyfile(store, tmp)
    rng = np.random.default_rng(seed)
    with h5py.File(tmp, "a") as f:
        for side, name in (("image", S.IMAGE_EMB), ("text", S.TEXT_EMB)):
            write_layer_attrs(
                f,
                side,
                count=n_layers,
                layers=list(range(n_layers)),
                pooling="synthetic (benchmarks/scale_store.py)",
                lens="synthetic: the last layer is the embedding",
            )
            for layer in range(n_layers):
                _write_layer(f, side, f[name], layer, n_layers, rng)
    tmp.replace(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("bigstore"))
    parser.add_argument("--n", type=int, default=N_IMAGES, help="images (5 captions each)")
    parser.add_argument("--layers", type=int, default=0, help="lens layers per side (a copy)")
    args = parser.parse_args()
    built = build_store(args.folder, args.n)
    print(add_layers(built, args.layers) if args.layers else built)
