"""Image perturbations for robustness studies: Gaussian noise, Gaussian blur, occlusion.

A setting is written as on the command line, `KIND:VALUE`:
- `noise:S`   adds N(0, S²) to every pixel on the [0, 1] scale, clipped to [0, 1];
- `blur:K`    convolves with a K×K Gaussian kernel (K odd), sigma from K as OpenCV and
              torchvision choose it by default, 0.3·((K − 1)/2 − 1) + 0.8, edges reflected;
- `occlude:P` paints a P×P black square at a seeded random position (cut to the image).
Each value has a maximum (`MAXIMA`: noise 100, blur 101, occlude 4096 pixels).

Perturbations act on the decoded RGB image, before the model's own preprocessing, and
return an 8-bit image again (values rounded), so every model sees the same pixels.
Randomness is keyed by (seed, image row, setting name): a setting is reproducible on
its own, whatever the other settings, the worker process or the resume point.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mgap.core.errors import UsageError

KINDS = ("noise", "blur", "occlude")

#: the CLIP/BLIP/ViLT robustness study's eight settings (the clean side is always stored)
SUITES: dict[str, tuple[str, ...]] = {
    "rtml": (
        "noise:0.01",
        "noise:0.05",
        "noise:0.1",
        "blur:1",
        "blur:3",
        "blur:5",
        "occlude:32",
        "occlude:64",
    ),
}

#: the largest value each kind takes: a 101-tap blur already flattens a 224-pixel crop, and
#: a 4096-pixel square covers any image a model sees; larger ones only cost time
MAXIMA = {"noise": 100.0, "blur": 101, "occlude": 4096}

_HINT = "write noise:STD (e.g. noise:0.05), blur:KERNEL (odd, e.g. blur:3) or occlude:PIXELS"


@dataclass(frozen=True)
class Perturbation:
    """One setting; `name` is its canonical command-line spelling and its store key."""

    kind: str
    value: float

    @property
    def name(self) -> str:
        if self.kind == "noise":
            return f"noise:{self.value:g}"
        return f"{self.kind}:{int(self.value)}"


def parse_perturbation(text: str) -> Perturbation:
    """`noise:0.05` -> Perturbation("noise", 0.05); a UsageError names what is wrong."""
    kind, sep, raw = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise UsageError(f"--perturb {text!r} is not a known perturbation", hint=_HINT)
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--perturb {text!r}: {raw!r} is not a number", hint=_HINT) from None
    if not np.isfinite(value) or not 0 <= value <= MAXIMA[kind]:
        raise UsageError(
            f"--perturb {text!r}: the value must be between 0 and {MAXIMA[kind]:g}", hint=_HINT
        )
    if kind != "noise" and value != int(value):
        raise UsageError(f"--perturb {text!r}: {raw!r} is not a whole number", hint=_HINT)
    if kind == "blur" and value % 2 == 0:
        raise UsageError(f"--perturb {text!r}: a blur kernel size must be odd", hint=_HINT)
    return Perturbation(kind, float(value))


def perturbation_names(items: Iterable[str], suites: Iterable[str] = ()) -> list[str]:
    """Canonical names of `--perturb` items plus `--perturb-suite` expansions, deduplicated
    in order (the clean side is implicit and never listed)."""
    texts: list[str] = []
    for suite in suites:
        if suite not in SUITES:
            raise UsageError(
                f"--perturb-suite {suite!r} is not a known suite",
                hint=f"choose one of: {', '.join(sorted(SUITES))}",
            )
        texts.extend(SUITES[suite])
    texts.extend(items)
    names: list[str] = []
    for text in texts:
        name = parse_perturbation(text).name
        if name not in names:
            names.append(name)
    return names


def _rng(seed: int, index: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), zlib.crc32(name.encode("utf-8"))])


def gaussian_kernel(size: int) -> np.ndarray:
    """The normalised 1-D Gaussian of `size` taps, sigma as OpenCV/torchvision default it."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def _blur(pixels: np.ndarray, size: int) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) float array, edges reflected (OpenCV's 101)."""
    kernel = gaussian_kernel(size).astype(np.float32)
    r = size // 2
    out = pixels
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > 1 else "edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for t, weight in enumerate(kernel):
            acc += weight * np.take(padded, np.arange(t, t + n), axis=axis)
        out = acc
    return out


def perturb_array(pixels: np.ndarray, setting: Perturbation, seed: int, index: int) -> np.ndarray:
    """The perturbed copy of an (H, W, 3) uint8 image (the input is never modified)."""
    kind, value = setting.kind, setting.value
    if kind == "noise":
        if value == 0:
            return pixels.copy()
        noise = _rng(seed, index, setting.name).normal(0.0, value, pixels.shape)
        scaled = np.clip(pixels / 255.0 + noise, 0.0, 1.0)
        return np.rint(scaled * 255.0).astype(np.uint8)
    if kind == "blur":
        if value <= 1:
            return pixels.copy()
        blurred = _blur(pixels.astype(np.float32), int(value))
        return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    if kind == "occlude":
        out = pixels.copy()
        size = int(value)
        if size == 0:
            return out
        height, width = pixels.shape[:2]
        ph, pw = min(size, height), min(size, width)
        rng = _rng(seed, index, setting.name)
        top = int(rng.integers(0, height - ph + 1))
        left = int(rng.integers(0, width - pw + 1))
        out[top : top + ph, left : left + pw] = 0
        return out
    raise UsageError(f"unknown perturbation kind {kind!r}", hint=_HINT)


def perturb_image(image, setting: Perturbation, seed: int, index: int):
    """`perturb_array` on a PIL image; returns a new RGB PIL image."""
    from PIL import Image

    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return Image.fromarray(perturb_array(pixels, setting, seed, index))


def image_sides(image, settings: Sequence[Perturbation], seed: int, index: int) -> list:
    """The clean image followed by one perturbed copy per setting (decoded once by the caller)."""
    return [image, *(perturb_image(image, s, seed, index) for s in settings)]
