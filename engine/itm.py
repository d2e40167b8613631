"""ViLT's image-text scores from its retrieval head: retrieval and zero-shot on a store's images.

A single-stream model scores a pair only by running image and text through the transformer
together, so every (image, text) pair is one forward pass: n_images × n_captions for
retrieval, n_images × n_classes for zero-shot. `limit` bounds the images (the first N in
store order, with their captions), `plan` states the cost before any model loads, and the
texts are scored in batches against one image at a time.

The recall and accuracy arithmetic on the score matrices is a measure
(`mgap.engine.measures.itm`: ties count against the true pair).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures.itm import retrieval_from_scores, zeroshot_from_scores
from mgap.engine.models import load_model, resolve_device
from mgap.engine.models.vilt import ViltAdapter
from mgap.engine.reports.studies import ItmRecall, ItmReport, ItmRetrieval, ItmZeroShot
from mgap.engine.store_images import image_root, open_images
from mgap.engine.studies.pairs import store_header
from mgap.store import open_store
from mgap.store.reader import Store

TASKS = ("retrieval", "zeroshot", "both")
TIES = "ties count against the true pair (a constant scorer gets 0)"
HEAD = "ViltForImageAndTextRetrieval.rank_output(pooler(h[CLS])) logit"


@dataclass(frozen=True)
class ItmRequest:
    store: Path
    limit: int = 100
    task: str = "both"
    template: str = "a photo of a {}."
    batch_size: int = 64
    device: str = "auto"
    data_root: Path | None = None
    #: options the store was extracted with (`--model-option`), e.g. precision=float16
    model_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItmPlan:
    n_images: int
    n_captions: int
    n_classes: int
    batch_size: int

    @property
    def pairs(self) -> int:
        return self.n_images * (self.n_captions + self.n_classes)

    @property
    def batches(self) -> int:
        per_image = -(-self.n_captions // self.batch_size) + -(-self.n_classes // self.batch_size)
        return self.n_images * per_image

    def describe(self) -> str:
        images = f"{self.n_images} image{'s' if self.n_images != 1 else ''}"
        parts = []
        if self.n_captions:
            parts.append(f"{images} × {self.n_captions} captions")
        if self.n_classes:
            parts.append(f"{images} × {self.n_classes} class prompts")
        return (
            f"{' + '.join(parts)} = {self.pairs:,} forward passes "
            f"in {self.batches:,} batches of ≤{self.batch_size}"
        )


def plan(store, request: ItmRequest) -> ItmPlan:
    """What the request costs, from the store alone (no model, no torch)."""
    if request.task not in TASKS:
        raise UsageError(f"--task {request.task!r} is not one of {', '.join(TASKS)}")
    if "{}" not in request.template:
        raise UsageError(f"--template {request.template!r} has no {{}} for the class name")
    n_images = min(request.limit, store.n_images)
    captions = int((store.text_image_index < n_images).sum())
    classes = len(store.category_names)
    if request.task == "zeroshot" and not classes:
        raise StoreError(f"{store.path.name} has no categories to classify into")
    if request.task == "retrieval" and not captions:
        raise StoreError(f"{store.path.name} has no captions for its first {n_images} images")
    return ItmPlan(
        n_images=n_images,
        n_captions=captions if request.task in ("retrieval", "both") else 0,
        n_classes=classes if request.task in ("zeroshot", "both") else 0,
        batch_size=request.batch_size,
    )


def _score_matrix(adapter, images: list, texts: list[str], batch_size: int, tick) -> np.ndarray:
    from torch.utils.data._utils.collate import default_collate

    preprocess = adapter.image_preprocess()
    out = np.zeros((len(images), len(texts)))
    for i, image in enumerate(images):
        batch = default_collate([preprocess(image)])
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[i, start : start + len(chunk)] = adapter.score_image(batch, chunk).cpu().numpy()
            tick(len(chunk))
    return out


def _open_model(store: Store, request: ItmRequest) -> tuple[ViltAdapter, list]:
    """ViLT with its retrieval head, and the first images (all of them readable)."""
    family = str(store.attrs.get("family", ""))
    if family != ViltAdapter.family:  # refused before any model loads
        raise UsageError(
            f"mgap itm scores pairs with ViLT's retrieval head; {store.model} is a "
            f"{family or 'unknown'} model",
            hint="use mgap retrieval / mgap zeroshot for two-tower models",
        )
    root = image_root(store, request.data_root)
    adapter = load_model(store.model, resolve_device(request.device), **request.model_options)
    adapter.check_retrieval_head()
    paths = [str(p) for p in store.image_paths[: min(request.limit, store.n_images)]]
    images, reasons = open_images(root, paths)
    unreadable = [p for p, r in zip(paths, reasons, strict=True) if r]
    if unreadable:
        raise StoreError(
            f"{len(unreadable)} of {len(paths)} images of {store.path.name} cannot be read "
            f"under {root} (first: {unreadable[0]})",
            hint="pass --data-root with the folder the store was extracted from",
        )
    return adapter, images


def _recall(side: dict) -> ItmRecall:
    return ItmRecall.build(r1=side["R@1"], r5=side["R@5"], r10=side["R@10"], n=side["n"])


def _scores(
    store: Store,
    request: ItmRequest,
    cost: ItmPlan,
    adapter: ViltAdapter,
    images: list,
    tick: Callable[[int], None],
) -> dict:
    """The retrieval and zero-shot parts of the report (those the task asks for)."""
    import torch

    parts: dict = {}
    with torch.inference_mode():
        if cost.n_captions:
            index = store.text_image_index
            keep = np.flatnonzero(index < cost.n_images)
            captions = [str(c) for c in store.captions[keep]]
            scores = _score_matrix(adapter, images, captions, request.batch_size, tick)
            recall = retrieval_from_scores(scores, index[keep])
            parts["retrieval"] = ItmRetrieval.build(
                i2t=_recall(recall["i2t"]), t2i=_recall(recall["t2i"])
            )
            parts["n_captions"] = len(captions)
        if cost.n_classes:
            names = list(store.category_names)
            prompts = [request.template.format(name) for name in names]
            scores = _score_matrix(adapter, images, prompts, request.batch_size, tick)
            parts["zeroshot"] = ItmZeroShot.build(
                **zeroshot_from_scores(scores, store.labels[: cost.n_images]),
                template=request.template,
                n_classes=len(names),
            )
    return parts


def itm_report(
    request: ItmRequest, progress: Callable[[int, int, float], None] | None = None
) -> ItmReport:
    """The `mgap itm` report; `progress(done_pairs, total_pairs, seconds)`."""
    store = open_store(request.store)
    cost = plan(store, request)
    adapter, images = _open_model(store, request)
    done, started = 0, time.perf_counter()

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, cost.pairs, time.perf_counter() - started)

    parts = _scores(store, request, cost, adapter, images, tick)
    return ItmReport.build(
        **store_header(store),
        head=HEAD,
        limit=request.limit,
        n_images=cost.n_images,
        pairs=cost.pairs,
        ties=TIES,
        **parts,
        seconds=time.perf_counter() - started,
    )
