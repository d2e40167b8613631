"""The extraction job: a checked request's dataset x models -> one resumable HDF5 store per model.

The job loads the models, plans the decode path (`mgap.engine.extract.loader`), makes
each store ready (`mgap.engine.extract.prepare`), then runs the embed loop: captions,
images, prompts. With `--perturb`, every store gets one image side per setting beside
the clean one. Rows reach the store in blocks of the store's `block_rows` (see
`mgap.store.schema`); a killed run resumes at the first unwritten block and produces the
same arrays as an uninterrupted one. Progress, signals and the final status are
`mgap.engine.extract.finish`'s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgap.core.errors import UsageError
from mgap.engine.extract import decode
from mgap.engine.extract.finish import (
    STATUS_DISK_FULL,
    Progress,
    Reporter,
    StopFlag,
    StopRequested,
    finish_stores,
    store_summary,
)
from mgap.engine.extract.layer_plan import plan_layers
from mgap.engine.extract.loader import DecodePlan, image_loader, plan_decode, to_device
from mgap.engine.extract.prepare import StoreTarget, prepare_store
from mgap.engine.extract.request import CheckedRequest
from mgap.engine.extract.texts import embed_captions, embed_prompts
from mgap.engine.models import load_model, resolve_device
from mgap.engine.reports.pipeline import ExtractedStore
from mgap.store import schema as S
from mgap.store.layers import LayerSet, dataset_name
from mgap.store.lock import StoreLock
from mgap.store.space import DiskFullError


class ExtractJob:
    """Runs one checked request; owns the signal handlers and the progress files."""

    def __init__(
        self, request: CheckedRequest, reporter: Reporter | None, with_prompts: bool = True
    ) -> None:
        self.request = request
        self.reporter = reporter or (lambda event, data: None)
        self.flag = StopFlag(self.reporter)
        self.started = time.time()
        self.with_prompts = with_prompts
        self.targets: list[StoreTarget] = []
        self.images_per_s = 0.0
        self.device = ""
        self.plan = DecodePlan()

    # -- setup ------------------------------------------------------------------------
    def run(self) -> list[ExtractedStore]:
        req = self.request
        self.device = resolve_device(req.device)
        models = [load_model(m.spec, self.device, **m.options) for m in req.models]
        layers = [plan_layers(model, req.layers) for model in models]  # refused before any write
        self.plan = plan_decode(req, self.device, models)
        progress = Progress(self.reporter, req.manifest, self.device, req.command, self.started)
        locks: list[StoreLock] = []
        try:
            for model, wanted, plan in zip(models, req.models, layers, strict=True):
                locks.append(self._lock(wanted.store))
                line = self.plan.line
                target = prepare_store(req, model, wanted.store, self.device, line, plan)
                self.targets.append(target)
            return self._run_targets(progress)
        finally:
            for lock in locks:
                lock.release()

    def _lock(self, path: Path) -> StoreLock:
        lock = StoreLock(path, wait=self.request.wait)
        if self.request.wait:
            self.reporter("note", {"message": f"waiting for the lock on {path}"})
        return lock.acquire()

    def _run_targets(self, progress: Progress) -> list[ExtractedStore]:
        manifest = self.request.manifest
        self.reporter(
            "start",
            {
                "device": self.device,
                "n_images": len(manifest.records),
                "models": self.request.specs,
                "dataset": manifest.dataset,
                "split": manifest.split,
            },
        )
        status = self._execute(progress)
        dtype = self.request.store_dtype
        return [store_summary(t, progress, status, self.images_per_s, dtype) for t in self.targets]

    def _execute(self, progress: Progress) -> str:
        """Texts, images, prompts; the stores' final status whatever happens."""
        targets = self.targets
        status, error = S.STATUS_COMPLETE, ""
        try:
            with self.flag.installed(), torch.inference_mode():
                for t in targets:
                    if t.active:
                        progress(t, status="running", phase="texts")
                        self._texts(t, progress)
                self._images(progress)
                for t in targets:
                    if self.with_prompts and t.writer is not None:
                        embed_prompts(t.model, t.writer, self.request.manifest)
        except StopRequested:
            status = "cancelled"
        except DiskFullError as exc:
            status, error = STATUS_DISK_FULL, exc.one_line()
            raise
        except BaseException as exc:
            status, error = S.STATUS_FAILED, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            finish_stores(targets, progress, status, error, self.images_per_s)
        return status

    # -- phases -----------------------------------------------------------------------
    def _texts(self, target: StoreTarget, progress: Progress) -> None:
        if not target.model.has_text or target.writer is None:
            return

        def after_block(done: int) -> None:
            target.texts_done = done
            progress(target, status="running", phase="texts")
            self.flag.check()

        req = self.request
        embed_captions(
            target.model,
            target.writer,
            req.manifest,
            target.texts_done,
            req.batch_size,
            req.store_dtype,
            after_block,
            target.layers.get("text"),
        )

    def _images(self, progress: Progress) -> None:
        n = len(self.request.manifest.records)
        pending = [t for t in self.targets if t.active and t.model.has_image and t.images_done < n]
        if not pending:
            return
        start = min(t.images_done for t in pending)
        block = self._common_block_rows(pending)
        self._allocate(pending, block)
        models = [t.model for t in pending]
        loader = image_loader(self.request, self.plan, models, start, block, self.device)
        t0, done_here, last_report = time.time(), 0, 0.0
        block_start = start
        for indices, reasons, batches in loader:
            self._record_skips(pending, indices, reasons)
            ok_rows = [i for i, r in zip(indices, reasons, strict=True) if not r]
            self._embed(pending, batches, np.asarray(ok_rows) - block_start)
            last = indices[-1] + 1
            done_here += len(indices)
            block_full = last - block_start >= block or last == n
            if block_full:
                self._flush(pending, block_start, last)
                block_start = last
            now = time.time()
            if block_full or now - last_report >= 0.5:  # progress files at most 2/s between blocks
                last_report = now
                progress.images(pending, last, done_here / max(now - t0, 1e-9))
            if block_full:
                self.flag.check()
        self.images_per_s = done_here / max(time.time() - t0, 1e-9)

    @staticmethod
    def _common_block_rows(pending: list[StoreTarget]) -> int:
        block = pending[0].writer.block_rows
        if any(t.writer.block_rows != block for t in pending):
            raise UsageError(
                "these stores were created with different block sizes",
                hint="extract them in separate runs",
            )
        return block

    def _allocate(self, pending: list[StoreTarget], block: int) -> None:
        """One zeroed block buffer per image side of every pending store."""
        sides = 1 + len(self.request.perturbations)
        for t in pending:
            t.buffers = [
                np.zeros((block, t.writer.image_dim), dtype=self.request.store_dtype)
                for _ in range(sides)
            ]
            t.valid = np.zeros(block, dtype=np.uint8)
            image_layers = t.layers.get("image")
            t.layer_buffers = {
                dataset_name("image", space, k): np.zeros(
                    (block, image_layers.widths[space]), dtype=self.request.store_dtype
                )
                for space in (image_layers.spaces if image_layers else ())
                for k in image_layers.layers
            }

    def _record_skips(
        self, pending: list[StoreTarget], indices: list[int], reasons: list[str]
    ) -> None:
        records = self.request.manifest.records
        for i, reason in zip(indices, reasons, strict=True):
            if not reason:
                continue
            for t in pending:
                if i >= t.images_done:
                    t.writer.add_skipped(records[i].id, reason)
                    t.skipped += 1

    def _embed(self, pending: list[StoreTarget], batches: list[Any], offsets: np.ndarray) -> None:
        """Run every pending image tower on its batch; rows land in the block buffers."""
        amp = self.device.startswith("cuda")
        amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        mode = self.plan.mode
        transforms = [self.plan.transforms.get(t.model.spec.text) for t in pending]
        if mode == "gpu" and batches:
            on_device = decode.gpu_batches(batches[0][0], transforms, self.device)
            batches = [[b] for b in on_device]
        for t, transform, sides in zip(pending, transforms, batches, strict=False):
            for side, (buffer, batch) in enumerate(zip(t.buffers, sides, strict=True)):
                inputs = to_device(batch, self.device)
                if mode == "tensor":  # the workers sent uint8 crops
                    inputs = transform.normalise(inputs)
                with torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
                    layers = t.layers.get("image") if side == 0 else None  # the clean side only
                    emb = self._encode(t, inputs, layers, offsets)
                buffer[offsets] = emb.float().cpu().numpy().astype(self.request.store_dtype)
            t.valid[offsets] = 1

    def _encode(
        self, t: StoreTarget, inputs: Any, layers: LayerSet | None, offsets: np.ndarray
    ) -> torch.Tensor:
        """The embeddings of `inputs`; with `layers`, their pooled states land in the
        layer buffers from the same forward pass."""
        if layers is None:
            return t.model.encode_images(inputs)
        emb, states = t.model.encode_images_layers(inputs, layers.layers, layers.spaces)
        for space in layers.spaces:
            pooled = getattr(states, space).float().cpu().numpy()
            for j, k in enumerate(layers.layers):
                buffer = t.layer_buffers[dataset_name("image", space, k)]
                buffer[offsets] = pooled[:, j].astype(self.request.store_dtype)
        return emb

    def _flush(self, pending: list[StoreTarget], block_start: int, last: int) -> None:
        rows = last - block_start
        names = self.request.perturbation_names
        for t in pending:
            if block_start >= t.images_done:
                clean, *perturbed = (b[:rows] for b in t.buffers)
                t.writer.write_images(
                    block_start,
                    clean,
                    t.valid[:rows],
                    dict(zip(names, perturbed, strict=True)),
                    {name: b[:rows] for name, b in t.layer_buffers.items()},
                )
                t.images_done = last
            for buffer in [*t.buffers, *t.layer_buffers.values()]:
                buffer[:] = 0
            t.valid[:] = 0
