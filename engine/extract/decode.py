"""Decoding paths that keep the model fed; the one used is recorded in the store's provenance.

- `tensor` (the default where a model's transform is Resize -> CenterCrop -> ToTensor ->
  Normalize, as open_clip's are): the workers decode JPEGs with libjpeg-turbo through
  `torchvision.io.decode_jpeg`, resize (antialiased bicubic on uint8) and crop, and send
  uint8 crops channels last (a quarter of the float bytes through worker IPC); the float
  conversion and Normalize run once per batch on the model's device
  (`TensorTransform.normalise`). On the real COCO sample its embeddings stay within
  cosine 0.99999 of the model's own transform (benchmarks/bench_decode.py gives the
  images/s per worker).
- `draft`: PIL's JPEG draft mode decodes a JPEG at least twice the model's input size
  at 1/2, 1/4 or 1/8 scale in the DCT domain (never below the input size), then the
  model's own transform. Faster still on large photos, but on COCO-sized photos its
  embeddings drift to cosine 0.9985 (ViT-B/32), below the 0.999 bound, so it is opt-in.
- `gpu` (CUDA): the workers only read the encoded bytes; JPEGs are decoded in batches by
  nvJPEG (`torchvision.io.decode_jpeg(device="cuda")`) from pinned memory and resized,
  cropped and normalised on the GPU. Other formats are decoded on the CPU.
- `exact`: the model's own transform on a full PIL decode, bit-faithful to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mgap.core.errors import UsageError
from mgap.engine.datasets.images import open_rgb

DECODE_MODES = ("auto", "tensor", "draft", "exact", "gpu")


def transform_steps(preprocess: Callable) -> list[Any]:
    """The steps of a torchvision `Compose` (or [] for any other callable)."""
    return list(getattr(preprocess, "transforms", []))


def input_size(preprocess: Callable) -> int | None:
    """The shortest side the model's transform resizes to, when it says (else None)."""
    sizes: list[int] = []
    for step in transform_steps(preprocess):
        name = type(step).__name__
        size = getattr(step, "size", None)
        if name in ("Resize", "CenterCrop") and size is not None:
            values = [size] if isinstance(size, int) else list(size)
            sizes.append(max(int(v) for v in values))
    return max(sizes) if sizes else None


def check_mode(mode: str, device: str) -> None:
    """A known mode, and `gpu` only on a CUDA device (checks that need no model)."""
    if mode not in DECODE_MODES:
        raise UsageError(f"--decode must be one of {', '.join(DECODE_MODES)}, got {mode!r}")
    if mode == "gpu" and not device.startswith("cuda"):
        raise UsageError("--decode gpu needs a CUDA device", hint="pass --device cuda or drop it")


def resolve_mode(mode: str, device: str, preprocessors: Sequence[Callable]) -> str:
    """`auto` -> `tensor` where every model's transform has a tensor twin and torchvision
    still decodes JPEGs, else `exact`. `device` is the resolved one: `auto` may have
    become the CPU, which rules out `gpu`."""
    check_mode(mode, device)
    twins = all(TensorTransform.from_preprocess(p) for p in preprocessors)
    if mode == "auto":
        return "tensor" if twins and has_jpeg_decoder() else "exact"
    if mode in ("tensor", "gpu") and not twins:
        raise UsageError(
            f"--decode {mode} needs a Resize/CenterCrop/Normalize transform, and a model has another",
            hint="use --decode draft or exact for this model",
        )
    if mode in ("tensor", "gpu") and not has_jpeg_decoder():
        raise UsageError(
            f"--decode {mode} needs torchvision.io.decode_jpeg, which this torchvision lacks",
            hint="use --decode exact, or a torchvision that still decodes JPEGs (<= 0.29)",
        )
    if mode == "draft" and not all(input_size(p) for p in preprocessors):
        raise UsageError("--decode draft needs each model's input size", hint="use --decode exact")
    return mode


def has_jpeg_decoder() -> bool:
    """torchvision deprecated its image decoders in 0.29 (for TorchCodec); without them
    the tensor paths would skip every image, so they are not chosen."""
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return True


def draft_target(preprocessors: Sequence[Callable]) -> int | None:
    """The smallest shortest side every model's transform can start from."""
    sizes = [input_size(p) for p in preprocessors]
    return max(sizes) if sizes and all(sizes) else None  # type: ignore[type-var]


def describe(mode: str, target: int | None) -> str:
    """The provenance line of a decode mode."""
    if mode == "draft":
        return (
            f"PIL JPEG draft: sources >= {2 * target}px on the short side decoded at 1/2-1/8 "
            f"DCT scale to >= {target}px, then the model's own transform"
        )
    if mode == "gpu":
        return "nvJPEG batch decode on the GPU, resize/crop/normalise on the GPU (non-JPEG: CPU)"
    if mode == "tensor":
        return (
            "torchvision decode_jpeg (libjpeg-turbo), antialiased resize and crop on uint8 in "
            "the workers, float conversion and normalise per batch on the device (the model's "
            "transform parameters)"
        )
    return "full PIL decode, then the model's own transform"


@dataclass
class TensorTransform:
    """A model's Resize -> CenterCrop -> ToTensor -> Normalize on uint8 tensors (CPU or GPU)."""

    size: int
    crop: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: Any

    @classmethod
    def from_preprocess(cls, preprocess: Callable) -> TensorTransform | None:
        """The tensor twin of a torchvision transform of that shape; None for anything else."""
        steps = {type(s).__name__: s for s in transform_steps(preprocess)}
        if not {"Resize", "CenterCrop", "Normalize"} <= set(steps):
            return None
        resize, crop = steps["Resize"], steps["CenterCrop"]
        if not isinstance(resize.size, int) and len(resize.size) != 1:
            return None
        size = resize.size if isinstance(resize.size, int) else resize.size[0]
        crop_size = crop.size if isinstance(crop.size, tuple | list) else (crop.size, crop.size)
        norm = steps["Normalize"]
        return cls(
            int(size),
            (int(crop_size[0]), int(crop_size[1])),
            tuple(float(v) for v in norm.mean),
            tuple(float(v) for v in norm.std),
            resize.interpolation,
        )

    @property
    def geometry(self) -> tuple[int, tuple[int, int], str]:
        """What the uint8 crop depends on: models that share it share one resize per image."""
        return self.size, self.crop, str(self.interpolation)

    def crop_uint8(self, image: Any) -> Any:
        """One uint8 CHW image -> the model's resized, centre-cropped input as uint8 HWC.

        Channels last is how the decoder and the resize lay pixels out, so the crop is a
        view and stacking a batch of them copies whole rows (a CHW stack was 5x slower).
        """
        from torchvision.transforms.v2 import functional as F

        resized = F.resize(image, [self.size], interpolation=self.interpolation, antialias=True)
        return F.center_crop(resized, list(self.crop)).permute(1, 2, 0)

    def normalise(self, batch: Any) -> Any:
        """A uint8 (N, H, W, C) batch of crops -> the model's float (N, C, H, W) input, on
        the batch's device.

        ToTensor's /255 and Normalize fold into one subtract and one multiply per pixel:
        (x/255 - mean)/std = (x - 255 mean) * 1/(255 std). The float conversion and the
        move to channels first are one copy.
        """
        import torch

        n, h, w, c = batch.shape
        shape = (1, c, 1, 1)
        shift = torch.tensor(self.mean, device=batch.device).mul_(255.0).view(shape)
        scale = torch.tensor(self.std, device=batch.device).mul_(255.0).reciprocal_().view(shape)
        out = torch.empty((n, c, h, w), dtype=torch.float32, device=batch.device)
        return out.copy_(batch.permute(0, 3, 1, 2)).sub_(shift).mul_(scale)

    def __call__(self, images: Sequence[Any]) -> Any:
        """uint8 CHW images (any sizes, on one device) -> one normalised float NCHW batch."""
        import torch

        return self.normalise(torch.stack([self.crop_uint8(img) for img in images]))


def decode_jpegs(encoded: Sequence[bytes], device: str) -> list[Any]:
    """Batched JPEG decode to uint8 RGB CHW tensors on `device` (nvJPEG on CUDA).

    The encoded bytes go through pinned host memory with non-blocking copies.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in encoded]
    if device.startswith("cuda"):
        data = [d.pin_memory() for d in data]
    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


@dataclass
class Encoded:
    """A worker's output on the GPU path: JPEG bytes, or a uint8 CHW tensor (other formats)."""

    payload: Any


def encoded(data: bytes) -> Encoded:
    """An encoded image for the tensor paths: a JPEG stays encoded, other formats decode here."""
    if data[:2] == b"\xff\xd8":  # JPEG start-of-image marker
        return Encoded(data)
    return Encoded(rgb_tensor(open_rgb(data)))


def gpu_batches(
    items: Sequence[Encoded], transforms: Sequence[TensorTransform], device: str
) -> list[Any]:
    """Decode a batch once (JPEGs in one nvJPEG call), then each model's transform on it."""
    jpeg = [i for i, item in enumerate(items) if isinstance(item.payload, bytes)]
    images: list[Any] = [None] * len(items)
    if jpeg:
        decoded = decode_jpegs([items[i].payload for i in jpeg], device)
        for i, image in zip(jpeg, decoded, strict=True):
            images[i] = image
    pin = device.startswith("cuda")
    for i, item in enumerate(items):
        if images[i] is None:
            tensor = item.payload.pin_memory() if pin else item.payload
            images[i] = tensor.to(device, non_blocking=True)
    return [transform(images) for transform in transforms]


def tensor_inputs(item: Encoded, transforms: Sequence[TensorTransform]) -> list[Any]:
    """One image as every model's uint8 crop, on the CPU (a worker's job); models with the
    same resize and crop share one. `TensorTransform.normalise` finishes them per batch."""
    image = item.payload
    if isinstance(image, bytes):
        try:
            image = decode_jpegs([image], "cpu")[0]
        except RuntimeError:  # CMYK, truncated, ...: PIL decodes it or names the problem
            image = rgb_tensor(open_rgb(image))
    crops: dict[tuple, Any] = {}
    for transform in transforms:
        if transform.geometry not in crops:
            crops[transform.geometry] = transform.crop_uint8(image)
    return [crops[transform.geometry] for transform in transforms]


def rgb_tensor(image: Any) -> Any:
    """A PIL RGB image as a uint8 CHW tensor."""
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
