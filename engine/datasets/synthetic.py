"""A seeded synthetic captioned dataset: coloured shapes with known attributes.

Why it exists: the offline demo and the controlled experiments of the gap papers need
images whose content is fully known. Each image shows one shape (its category) with four
attributes (colour, size, position, background); pixels are rendered from the record on
demand, so there are no files and the same seed always gives the same pixels.

`caption_detail` in [0, 1] sets how many of the four attributes each caption mentions:
round(caption_detail * 4), chosen at random per caption (the shape is always named).
At 0 captions say only "a circle."; at 1 they describe everything the image shows. This is
the information imbalance that "Two Effects, One Trigger" (Schrodi et al. 2025) names as
the trigger of the modality gap.

Options (strings from `--option KEY=VALUE` are parsed): n (images; train 2000, test 500),
seed (0), caption_detail (0.5), captions_per_image (3), image_size (64).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.datasets.base import ImageRecord, Manifest

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": ("red", "green", "blue", "yellow", "purple", "orange"),
    "size": ("small", "medium", "large"),
    "position": ("top left", "top right", "bottom left", "bottom right", "center"),
    "background": ("white", "gray", "black"),
}
SPLITS = {"train": 0, "test": 1}
DEFAULT_N = {"train": 2000, "test": 500}
#: captions written per image unless the `captions_per_image` option says otherwise (the
#: toy's training config and the TUI's dataset sizes read it from here)
CAPTIONS_PER_IMAGE = 3

PROMPT_TEMPLATES = ["a photo of a {}.", "a {}."]
LABEL_PROMPTS = {
    "colour": ["a {} object.", "a photo of something {}."],
    "size": ["a {} object.", "a photo of something {}."],
    "position": ["an object in the {}.", "a photo of something in the {}."],
    "background": ["an object on a {} background.", "a photo of something on a {} background."],
}
CAPTION_TEMPLATES = ("{np}{tail}.", "a photo of {np}{tail}.", "an image of {np}{tail}.")

_RGB = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 30),
}
_BACKGROUND = {"white": (245, 245, 245), "gray": (128, 128, 128), "black": (15, 15, 15)}
_RADIUS = {"small": 12, "medium": 16, "large": 21}
_CENTRE = {
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
    "center": (0.5, 0.5),
}


@dataclass
class SyntheticManifest(Manifest):
    """A manifest whose images are drawn from their records instead of read from files."""

    image_size: int = 64
    seed: int = 0

    encoded: bool = False

    def load_image(self, index: int, draft_to: int | None = None):
        record = self.records[index]
        return render(
            record.primary or "", record.attributes, self.image_size, self.seed, record.id
        )


def render(shape: str, attributes: dict[str, str], size: int, seed: int, image_id: str):
    """The RGB PIL image of one record; jitter and noise come from (seed, image id) only."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, zlib.crc32(image_id.encode())])
    scale = size / 64
    img = Image.new("RGB", (size, size), _BACKGROUND[attributes["background"]])
    draw = ImageDraw.Draw(img)
    fx, fy = _CENTRE[attributes["position"]]
    cx = fx * size + rng.uniform(-3, 3) * scale
    cy = fy * size + rng.uniform(-3, 3) * scale
    r = (_RADIUS[attributes["size"]] + rng.uniform(-1, 1)) * scale
    angle = rng.uniform(-0.25, 0.25)
    colour = _RGB[attributes["colour"]]
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=colour)
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        radii, corners, start = [r * math.sqrt(2)], 4, math.pi / 4
    elif shape == "diamond":
        radii, corners, start = [r * 1.2], 4, 0.0
    elif shape == "triangle":
        radii, corners, start = [r * 1.2], 3, -math.pi / 2
    elif shape == "star":
        radii, corners, start = [r * 1.2, r * 0.5], 5, -math.pi / 2
    elif shape == "cross":
        w = r * 0.4
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w)]
        pts += [(-r, w), (-r, -w), (-w, -w)]
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    steps = corners * len(radii)
    return [
        (
            cx + radii[k % len(radii)] * math.cos(start + angle + 2 * math.pi * k / steps),
            cy + radii[k % len(radii)] * math.sin(start + angle + 2 * math.pi * k / steps),
        )
        for k in range(steps)
    ]


def mentioned_count(caption_detail: float) -> int:
    """How many of the four attributes each caption names."""
    return round(caption_detail * len(ATTRIBUTES))


def caption(shape: str, attributes: dict[str, str], mention: set[str], template: str) -> str:
    words = [attributes[k] for k in ("size", "colour") if k in mention] + [shape]
    noun = " ".join(words)
    article = "an" if noun[0] in "aeiou" else "a"
    tail = ""
    if "position" in mention:
        tail += f" in the {attributes['position']}"
    if "background" in mention:
        tail += f" on a {attributes['background']} background"
    return template.format(np=f"{article} {noun}", tail=tail)


def vocabulary() -> list[str]:
    """Every word any caption or zero-shot prompt of this dataset can contain, sorted."""
    texts = [*CAPTION_TEMPLATES, *PROMPT_TEMPLATES, *SHAPES]
    texts += [t for ts in LABEL_PROMPTS.values() for t in ts]
    texts += [v for vs in ATTRIBUTES.values() for v in vs]
    texts += ["a an the in on background {np} {tail}"]
    words = {w for text in texts for w in re.findall(r"[a-z]+", text.lower())}
    return sorted(words - {"np", "tail"})


def make_records(
    split: str, n: int, seed: int, caption_detail: float, captions_per_image: int
) -> list[ImageRecord]:
    """Records of one split; attributes ignore caption_detail, so images never change with it."""
    keys = list(ATTRIBUTES)
    k = mentioned_count(caption_detail)
    records = []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLITS[split], i])
        shape = SHAPES[rng.integers(len(SHAPES))]
        attributes = {key: values[rng.integers(len(values))] for key, values in ATTRIBUTES.items()}
        text_rng = np.random.default_rng([seed, SPLITS[split], i, 1])
        captions = []
        for _ in range(captions_per_image):
            mention = {keys[j] for j in text_rng.permutation(len(keys))[:k]}
            template = CAPTION_TEMPLATES[text_rng.integers(len(CAPTION_TEMPLATES))]
            captions.append(caption(shape, attributes, mention, template))
        records.append(
            ImageRecord(
                id=f"{split}-{i:05d}",
                path="",
                captions=captions,
                categories=[shape],
                primary=shape,
                attributes=attributes,
            )
        )
    return records


def _option(options: dict[str, object], key: str, cast: type, default: object) -> object:
    value = options.get(key, default)
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"synthetic dataset option {key}={value!r} is not a {cast.__name__}"
        ) from exc


def load(data_root: Path | None, split: str | None, *, kind: str, **options: object) -> Manifest:
    """The synthetic split; `data_root` is unused because nothing is read from disk."""
    split = split or "test"
    if split not in SPLITS:
        raise UsageError(
            f"the synthetic dataset has no split {split!r}", hint="use --split train or test"
        )
    known = {"n", "seed", "caption_detail", "captions_per_image", "image_size"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(
            f"unknown synthetic dataset option(s): {', '.join(unknown)}",
            hint=f"known options: {', '.join(sorted(known))}",
        )
    n = _option(options, "n", int, DEFAULT_N[split])
    seed = _option(options, "seed", int, 0)
    detail = _option(options, "caption_detail", float, 0.5)
    per_image = _option(options, "captions_per_image", int, CAPTIONS_PER_IMAGE)
    image_size = _option(options, "image_size", int, 64)
    if n < 1 or per_image < 1:
        raise UsageError("synthetic options n and captions_per_image must be at least 1")
    if not 0.0 <= detail <= 1.0:
        raise UsageError(f"caption_detail must be in [0, 1], got {detail}")
    if image_size < 16:
        raise UsageError(f"image_size must be at least 16, got {image_size}")
    return SyntheticManifest(
        dataset=kind,
        split=split,
        root="",
        records=make_records(split, n, seed, detail, per_image),
        category_names=list(SHAPES),
        prompt_templates=list(PROMPT_TEMPLATES),
        label_prompts={k: list(v) for k, v in LABEL_PROMPTS.items()},
        image_size=image_size,
        seed=seed,
    )
