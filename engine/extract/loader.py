"""The image pass's input: the decode plan, and DataLoader workers that decode each image
once and apply every model's preprocessing to it.

Images are decoded once, in DataLoader worker processes, and every model's preprocessing
runs there too, so one pass feeds every image tower (on the default `tensor` decode path
the workers stop at uint8 crops, and the float conversion and Normalize run per batch on
the model's device). With `--perturb`, the workers also make each perturbed copy of the
decoded image (see `mgap.engine.extract.perturb`) and preprocess it. Batches never
straddle a store block, so a block is written whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from mgap.engine.datasets import Manifest
from mgap.engine.extract import decode
from mgap.engine.extract.perturb import Perturbation, image_sides
from mgap.engine.extract.request import CheckedRequest
from mgap.engine.models import EmbeddingModel


@dataclass(frozen=True)
class DecodePlan:
    """This pass's decode path (see `mgap.engine.extract.decode`); stores record `line`."""

    mode: str = "exact"
    draft_to: int | None = None
    line: str = ""
    #: model spec -> the tensor twin of its transform (tensor and gpu paths only)
    transforms: dict[str, decode.TensorTransform | None] = field(default_factory=dict)


def plan_decode(request: CheckedRequest, device: str, models: list[EmbeddingModel]) -> DecodePlan:
    """Choose the decode path for these loaded models on the resolved `device`."""
    pres = {m.spec.text: m.image_preprocess() for m in models if m.has_image}
    asked = "exact" if request.perturbations else request.decode
    mode = decode.resolve_mode(asked, device, list(pres.values()))
    if not pres:
        return DecodePlan()  # text-only models decode no images
    draft_to = decode.draft_target(list(pres.values()))
    transforms = (
        {s: decode.TensorTransform.from_preprocess(p) for s, p in pres.items()}
        if mode in ("tensor", "gpu")
        else {}
    )
    return DecodePlan(mode, draft_to, decode.describe(mode, draft_to), transforms)


class ImageItems(Dataset):
    """Decodes image `i` once, makes its perturbed copies, and applies every model's
    preprocessing to each side: item[m][s] is model m's input for side s (0 = clean)."""

    def __init__(
        self,
        manifest: Manifest,
        preprocessors: Sequence[Callable],
        start: int,
        perturbations: Sequence[Perturbation] = (),
        seed: int = 0,
        decode_mode: str = "exact",
        draft_to: int | None = None,
        tensor_transforms: Sequence[decode.TensorTransform] = (),
    ) -> None:
        self.manifest = manifest
        self.preprocessors = list(preprocessors)
        self.start = start
        self.perturbations = list(perturbations)
        self.seed = seed
        self.decode_mode = decode_mode
        self.draft_to = draft_to if decode_mode == "draft" else None
        self.tensor_transforms = list(tensor_transforms)

    def __len__(self) -> int:
        return len(self.manifest.records) - self.start

    def __getitem__(self, k: int) -> tuple[int, Any, str]:
        return self.__getitems__([k])[0]

    def __getitems__(self, ks: Sequence[int]) -> list[tuple[int, Any, str]]:
        """A batch (the DataLoader's fetch): its files are read ahead on the reader thread
        while the worker decodes, one hand-off per batch."""
        indices = [self.start + k for k in ks]
        if not self.manifest.encoded:  # drawn in memory: no bytes to read
            return [self._item(index, None) for index in indices]
        data = self.manifest.images_bytes(indices)
        return [self._item(index, d) for index, d in zip(indices, data, strict=True)]

    def _item(self, index: int, data: bytes | Exception | None) -> tuple[int, Any, str]:
        try:
            if isinstance(data, Exception):
                raise data
            if self.decode_mode in ("gpu", "tensor"):
                return index, self._tensor_item(index, data), ""
            image = (
                self.manifest.load_image(index, self.draft_to)
                if data is None
                else decode.open_rgb(data, self.draft_to)
            )
            sides = image_sides(image, self.perturbations, self.seed, index)
            return index, [[pre(side) for side in sides] for pre in self.preprocessors], ""
        except Exception as exc:  # noqa: BLE001 - any unreadable image is skipped, never fatal
            return index, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]

    def _tensor_item(self, index: int, data: bytes | None) -> list[list[Any]]:
        item = (
            decode.Encoded(decode.rgb_tensor(self.manifest.load_image(index)))
            if data is None
            else decode.encoded(data)
        )
        if self.decode_mode == "gpu":  # decoded and preprocessed on the GPU in batches
            return [[item] for _ in self.preprocessors]
        return [[x] for x in decode.tensor_inputs(item, self.tensor_transforms)]


def block_batches(count: int, batch_size: int, block_rows: int) -> list[list[int]]:
    """Batches of dataset positions that never straddle a store block boundary."""
    batches: list[list[int]] = []
    for block in range(0, count, block_rows):
        end = min(block + block_rows, count)
        batches.extend(
            list(range(i, min(i + batch_size, end))) for i in range(block, end, batch_size)
        )
    return batches


def collate_items(items: list[tuple[int, Any, str]]) -> tuple[list[int], list[str], list[Any]]:
    """Indices, reasons ('' = ok) and, per model and side, the collated batch of the
    readable images."""
    indices = [i for i, _, _ in items]
    reasons = [r for _, _, r in items]
    ok = [outs for _, outs, r in items if not r]
    join = list if ok and isinstance(ok[0][0][0], decode.Encoded) else default_collate
    per_model = (
        [
            [join([outs[m][s] for outs in ok]) for s in range(len(ok[0][m]))]
            for m in range(len(ok[0]))
        ]
        if ok
        else []
    )
    return indices, reasons, per_model


def image_loader(
    request: CheckedRequest,
    plan: DecodePlan,
    models: list[EmbeddingModel],
    start: int,
    block: int,
    device: str,
) -> DataLoader:
    """Decoding workers feeding `models` batches from image row `start` on."""
    manifest = request.manifest
    dataset = ImageItems(
        manifest,
        [m.image_preprocess() for m in models],
        start,
        request.perturbations,
        request.perturb_seed,
        plan.mode,
        plan.draft_to,
        [plan.transforms[m.spec.text] for m in models] if plan.mode == "tensor" else [],
    )
    workers = request.num_workers
    return DataLoader(
        dataset,
        batch_sampler=block_batches(len(manifest.records) - start, request.batch_size, block),
        num_workers=workers,
        collate_fn=collate_items,
        pin_memory=device.startswith("cuda"),
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )


def to_device(batch: Any, device: str) -> Any:
    """A collated batch (tensors, or dicts and lists of them) moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
