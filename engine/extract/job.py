"""The extraction job: dataset x models -> one resumable HDF5 store per model.

Images are decoded once, in DataLoader worker processes, and every model's preprocessing
runs there too, so one pass feeds every image tower (on the default `tensor` decode path
the workers stop at uint8 crops, and the float conversion and Normalize run per batch on
the model's device). With `--perturb`, the workers also
make each perturbed copy of the decoded image (see `mgap.engine.extract.perturb`) and preprocess
it, and every store gets one image side per setting beside the clean one. Rows reach the store in blocks of
the store's `block_rows` (see `mgap.store.schema`); a killed run resumes at the first unwritten block
and produces the same arrays as an uninterrupted one. Progress goes to a JSON file next to
each store (the TUI's view of the job) and to a `reporter` callback (the CLI's bar).

One writer per store: the job holds each store's lock (`mgap.store.lock`) from the
existence check to the end. A resume first re-checks that the inputs are the ones the
store was started with (rows, annotation hash, model, preprocessing, store dtype, decode
path). A full disk stops the run without touching the store's metadata, so the same
command resumes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from mgap import __version__
from mgap.core.errors import DatasetError, StoreError, UsageError
from mgap.engine.datasets import Manifest, load_manifest
from mgap.engine.extract import decode
from mgap.engine.extract.distributed import detect as detect_rank
from mgap.engine.extract.perturb import (
    Perturbation,
    image_sides,
    parse_perturbation,
    perturbation_names,
)
from mgap.engine.models import EmbeddingModel, load_model, resolve_device
from mgap.engine.reports.pipeline import ExtractedStore
from mgap.store import schema as S
from mgap.store.lock import StoreLock
from mgap.store.naming import cache_path, default_store_dir, progress_path, store_filename
from mgap.store.process import process_identity
from mgap.store.progress import write_progress
from mgap.store.reader import Store
from mgap.store.space import DiskFullError
from mgap.store.writer import StoreLayout, StoreWriter, create_store, now_iso

Reporter = Callable[[str, dict[str, Any]], None]
#: the run status when the disk filled up (the store itself stays "partial")
STATUS_DISK_FULL = "disk-full"


def _json_list(value: object) -> list:
    """A JSON list stored as a string attribute ([] when absent or unreadable)."""
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else []
    except json.JSONDecodeError:
        return []
    return parsed if isinstance(parsed, list) else []


@dataclass
class ExtractRequest:
    models: Sequence[str]
    dataset: str
    data_root: str | Path | None = None
    split: str | None = None
    limit: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    #: options for every model, and per model spec (`--model-option SPEC::KEY=VALUE`)
    model_options: dict[str, Any] = field(default_factory=dict)
    per_model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: int = 64
    device: str = "auto"
    #: dtype of the stored embeddings (`--store-dtype`; the model computes in float32 or AMP)
    store_dtype: str = "float16"
    store_dir: str | Path | None = None
    out: str | Path | None = None
    resume: bool = True
    overwrite: bool = False
    #: queue behind another writer of the same store instead of failing
    wait: bool = False
    num_workers: int | None = None
    block_rows: int = S.BLOCK_ROWS
    command: str = ""
    #: an already loaded manifest (the CLI loads it before importing torch, to fail fast)
    manifest: Manifest | None = None
    #: image decoding: auto, tensor, draft (PIL JPEG draft), exact (the model's own transform), gpu
    decode: str = "auto"
    #: perturbation settings (`noise:0.05`, `blur:3`, `occlude:64`), stored beside the clean side
    perturbations: Sequence[str] = ()
    perturb_seed: int = 0


class _StopRequested(Exception):
    """SIGTERM/SIGINT arrived: stop after the block in flight."""


# ---- decoding in worker processes ---------------------------------------------------
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
                item = (
                    decode.Encoded(decode.rgb_tensor(self.manifest.load_image(index)))
                    if data is None
                    else decode.encoded(data)
                )
                if self.decode_mode == "gpu":  # decoded and preprocessed on the GPU in batches
                    return index, [[item] for _ in self.preprocessors], ""
                return index, [[x] for x in decode.tensor_inputs(item, self.tensor_transforms)], ""
            image = (
                self.manifest.load_image(index, self.draft_to)
                if data is None
                else decode.open_rgb(data, self.draft_to)
            )
            sides = image_sides(image, self.perturbations, self.seed, index)
            return index, [[pre(side) for side in sides] for pre in self.preprocessors], ""
        except Exception as exc:  # noqa: BLE001 - any unreadable image is skipped, never fatal
            return index, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _block_batches(count: int, batch_size: int, block_rows: int) -> list[list[int]]:
    """Batches of dataset positions that never straddle a store block boundary."""
    batches: list[list[int]] = []
    for block in range(0, count, block_rows):
        end = min(block + block_rows, count)
        batches.extend(
            list(range(i, min(i + batch_size, end))) for i in range(block, end, batch_size)
        )
    return batches


def caption_blocks(caption_rows: np.ndarray, n_images: int, block_rows: int) -> np.ndarray:
    """Caption positions where each image block's captions start, then the caption count.

    Text rows are written (and batched) per image block, so a rank that owns image blocks
    [a, b) encodes exactly the text batches that a single process would: shards merge
    bit-equal to a one-process run.
    """
    starts = np.arange(0, n_images, block_rows)
    bounds = np.searchsorted(caption_rows, starts, side="left")
    return np.unique(np.append(bounds, len(caption_rows)).astype(np.int64))


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


# ---- one store per model ------------------------------------------------------------
@dataclass
class StoreTarget:
    model: EmbeddingModel
    path: Path
    writer: StoreWriter | None = None
    images_done: int = 0
    texts_done: int = 0
    skipped: int = 0
    note: str = ""
    #: one block buffer per image side: the clean side, then each perturbation
    buffers: list[np.ndarray] = field(default_factory=list)
    valid: np.ndarray | None = None

    @property
    def active(self) -> bool:
        return self.writer is not None


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": sys.version.split()[0]}
    for name in (
        "torch",
        "torchvision",
        "transformers",
        "open_clip_torch",
        "h5py",
        "numpy",
        "sentence-transformers",
        "timm",
    ):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return versions


def _probe_dims(model: EmbeddingModel, device: str) -> tuple[int | None, int | None]:
    """Embedding sizes from one tiny forward pass (also proves the model runs)."""
    from PIL import Image

    image_dim = text_dim = None
    with torch.inference_mode():
        if model.has_image:
            sample = model.image_preprocess()(Image.new("RGB", (64, 64), (127, 127, 127)))
            image_dim = int(model.encode_images(default_collate([sample])).shape[-1])
        if model.has_text:
            text_dim = int(model.encode_texts(["a photo."]).shape[-1])
    return image_dim, text_dim


def store_layout(manifest: Manifest) -> StoreLayout:
    captions, rows = manifest.captions_and_rows()
    primary, labels = manifest.label_arrays()
    return StoreLayout(
        image_ids=[r.id for r in manifest.records],
        image_paths=[r.path for r in manifest.records],
        captions=captions,
        caption_image_row=rows,
        category_names=manifest.category_names,
        supercategories=[manifest.supercategories.get(c, "") for c in manifest.category_names],
        primary=primary,
        labels=labels,
        attributes=manifest.attribute_columns(),
    )


def _canonical(value: object) -> str:
    """One text per value: dicts and lists (stored as JSON strings) with sorted keys."""
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _short(text: str) -> str:
    return text if len(text) <= 28 else text[:24] + "…"


#: how a refused resume names an input whose attribute name says less than its option
INPUT_NAMES = {"precision": "store dtype (--store-dtype)"}


def input_changes(store: Store, wanted: dict[str, object]) -> list[str]:
    """What differs between the inputs a store was started with and `wanted`."""
    changes = []
    for key, value in wanted.items():
        stored = store.attrs.get(key)
        if stored in (None, "") or value in (None, ""):
            continue  # a store from an older mgap, or a source that records nothing
        before, now = _canonical(stored), _canonical(value)
        if before != now:
            name = INPUT_NAMES.get(key, key)
            changes.append(f"{name} changed (was {_short(before)}, now {_short(now)})")
    return changes


def _check_same_inputs(path: Path, store: Store, wanted: dict[str, object]) -> None:
    changes = input_changes(store, wanted)
    if changes:
        raise StoreError(
            f"{path} was started with other inputs: {'; '.join(changes)}",
            hint="pass --overwrite to start it again, or rerun with the original inputs",
        )


def _check_same_perturbations(
    path: Path, store: Store, perturbations: Sequence[str], seed: int
) -> None:
    wanted = list(perturbations) if store.has_images else []
    stored_seed = int(store.attrs.get("perturb_seed", 0) or 0)
    if store.perturbations != wanted or (wanted and stored_seed != seed):
        raise StoreError(
            f"{path} exists with perturbations {store.perturbations or 'none'} "
            f"(seed {stored_seed}), not {wanted or 'none'} (seed {seed})",
            hint="pass the same --perturb options, or --overwrite to replace the store",
        )


def _remove_store(path: Path) -> None:
    for p in (
        path,
        progress_path(path),
        cache_path(path),
        path.with_name(path.name + ".skipped.jsonl"),
    ):
        p.unlink(missing_ok=True)


def store_path(request: ExtractRequest, spec: str, manifest: Manifest) -> Path:
    """Where the store of model `spec` goes: --out, or its standard name in the store dir."""
    if request.out is not None:
        return Path(request.out)
    root = Path(request.store_dir) if request.store_dir else default_store_dir()
    return root / store_filename(manifest.dataset, manifest.split, spec)


class ExtractJob:
    """Runs one request; owns the signal handlers and the progress files."""

    def __init__(
        self,
        request: ExtractRequest,
        reporter: Reporter | None,
        store_paths: dict[str, Path] | None = None,
        with_prompts: bool = True,
    ) -> None:
        self.request = request
        self.reporter = reporter or (lambda event, data: None)
        self.stop = False
        self.started = time.time()
        self.locks: list[StoreLock] = []
        #: model spec -> store path, overriding --out/--store-dir (a rank's partial stores)
        self.store_paths = store_paths or {}
        self.with_prompts = with_prompts
        self.targets: list[StoreTarget] = []
        self.decode_mode, self.draft_to, self.decode_line = "exact", None, ""
        self.tensor_transforms: dict[str, decode.TensorTransform | None] = {}

    # -- setup ------------------------------------------------------------------------
    def _store_path(self, spec: str, manifest: Manifest) -> Path:
        if spec in self.store_paths:
            return self.store_paths[spec]
        return store_path(self.request, spec, manifest)

    def provenance(self, model: EmbeddingModel, manifest: Manifest, device: str) -> dict:
        described = model.describe()
        # the store's `precision` is the storage dtype; an adapter's compute precision
        # (BLIP, LLaVA, ViLT) is kept as `model_precision` instead of overwriting it
        if "precision" in described:
            described["model_precision"] = described.pop("precision")
        return {
            **described,
            "compute_dtype": "autocast" if device.startswith("cuda") else "float32",
            "device": device,
            "batch_size": self.request.batch_size,
            "dataset": manifest.dataset,
            "split": manifest.split,
            "data_root": manifest.root,
            "annotation_sha256": manifest.annotation_sha256,
            **manifest.provenance,
            "decode": self.decode_line,
            "library_versions": _library_versions(),
            "command": self.request.command,
            "mgap_version": __version__,
        }

    def _inputs(self, model: EmbeddingModel, manifest: Manifest, layout: StoreLayout) -> dict:
        """The provenance values that must match for a resume to continue a store."""
        described = model.describe()
        return {
            "model": model.spec.text,
            "rows_sha256": layout.digest(),
            "annotation_sha256": manifest.annotation_sha256,
            "weights": described.get("weights"),
            "preprocessing": described.get("preprocessing"),
            "embedding_image": described.get("embedding_image"),
            "embedding_text": described.get("embedding_text"),
            "precision": self.request.store_dtype,
            "decode": self.decode_line,
        }

    def _resume(self, target: StoreTarget, manifest: Manifest, layout: StoreLayout) -> StoreTarget:
        path = target.path
        store = Store(path)
        _check_same_inputs(path, store, self._inputs(target.model, manifest, layout))
        _check_same_perturbations(
            path, store, self.request.perturbations, self.request.perturb_seed
        )
        if list(store.all_image_ids) != [r.id for r in manifest.records]:
            raise StoreError(
                f"{path} holds other image rows ({store.n_images_total} images)",
                hint="pass --overwrite to start it again, or choose another --store-dir/--out",
            )
        writer = StoreWriter(path)
        target.images_done, target.texts_done = writer.progress()
        if writer.status == S.STATUS_COMPLETE:
            target.note = "already complete"
            target.skipped = len(store.skipped)
            return target
        resumes = _json_list(store.attrs.get("resumes"))
        resumes.append(
            {
                "at": now_iso(),
                "batch_size": self.request.batch_size,
                "images_done": target.images_done,
                "texts_done": target.texts_done,
                "command": self.request.command,
            }
        )
        writer.set_attrs(resumes=resumes)
        target.writer = writer
        target.skipped = len(writer.journal_entries())
        target.note = f"resumed at image row {target.images_done}"
        if str(store.attrs.get("batch_size")) != str(self.request.batch_size):
            target.note += f" with batch size {self.request.batch_size} (recorded)"
        return target

    def _lock(self, path: Path) -> None:
        lock = StoreLock(path, wait=self.request.wait)
        if self.request.wait:
            self.reporter("note", {"message": f"waiting for the lock on {path}"})
        self.locks.append(lock.acquire())

    def _prepare(self, model: EmbeddingModel, manifest: Manifest, device: str) -> StoreTarget:
        path = self._store_path(model.spec.text, manifest)
        target = StoreTarget(model, path)
        self._lock(path)
        layout = store_layout(manifest)
        if path.exists():
            if self.request.overwrite:
                _remove_store(path)
            elif not self.request.resume:
                raise StoreError(f"{path} already exists", hint="pass --resume or --overwrite")
            else:
                return self._resume(target, manifest, layout)
        image_dim, text_dim = _probe_dims(model, device)
        target.writer = create_store(
            path,
            layout,
            {**self.provenance(model, manifest, device), "rows_sha256": layout.digest()},
            image_dim=image_dim,
            text_dim=text_dim,
            dtype=self.request.store_dtype,
            block_rows=self.request.block_rows,
            perturbations=self.request.perturbations,
            perturb_seed=self.request.perturb_seed,
        )
        if not model.has_image:
            target.images_done = len(manifest.records)
        return target

    # -- progress ---------------------------------------------------------------------
    def _progress(self, target: StoreTarget, manifest: Manifest, **fields: Any) -> None:
        n = len(manifest.records)
        doc = dict(
            pid=os.getpid(),
            model=target.model.spec.text,
            dataset=manifest.dataset,
            split=manifest.split,
            store=str(target.path),
            n_images=n,
            n_texts=target.writer.n_texts if target.writer else 0,
            images_done=target.images_done,
            texts_done=target.texts_done,
            skipped=target.skipped,
            device=self.device,
            started=self.started,
            command=self.request.command,
            **process_identity(),
        )
        doc.update(fields)
        write_progress(target.path, **doc)
        self.reporter("progress", doc)

    # -- phases -----------------------------------------------------------------------
    def _texts(self, target: StoreTarget, captions: list[str], manifest: Manifest) -> None:
        model, writer = target.model, target.writer
        if not model.has_text or writer is None:
            return
        step = max(self.request.batch_size, 32)
        _, rows = manifest.captions_and_rows()
        bounds = caption_blocks(rows, len(manifest.records), writer.block_rows)
        for stop in bounds[1:]:
            start = target.texts_done
            if stop <= start:
                continue
            parts = [
                model.encode_texts(captions[i : min(i + step, stop)]).float().cpu().numpy()
                for i in range(start, stop, step)
            ]
            writer.write_texts(start, np.concatenate(parts).astype(self.request.store_dtype))
            target.texts_done = int(stop)
            self._progress(target, manifest, status="running", phase="texts")
            if self.stop:
                raise _StopRequested

    def prompts(self, target: StoreTarget, manifest: Manifest) -> None:
        """Zero-shot class embeddings: mean of normalised prompt embeddings per class."""
        model, writer = target.model, target.writer
        if not model.has_text or writer is None:
            return
        sets: dict[str, tuple[list[str], list[str]]] = {}
        if manifest.category_names and manifest.prompt_templates:
            sets[S.PROMPT_SET_CATEGORY] = (manifest.category_names, manifest.prompt_templates)
        columns = manifest.attribute_columns()
        for key, templates in manifest.label_prompts.items():
            values = sorted({v for v in columns.get(key, []) if v})
            if values:
                sets[key] = (values, templates)
        for label_set, (names, templates) in sets.items():
            shown = [manifest.display_names.get(name, name) for name in names]
            texts = [t.format(name) for name in shown for t in templates]
            emb = (
                torch.cat(
                    [
                        model.encode_texts(texts[i : i + 256]).float().cpu()
                        for i in range(0, len(texts), 256)
                    ]
                )
                .numpy()
                .astype(np.float64)
            )
            emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
            writer.write_prompts(
                label_set, names, emb.reshape(len(names), len(templates), -1).mean(1)
            )

    def _images(self, targets: list[StoreTarget], manifest: Manifest) -> None:
        n = len(manifest.records)
        pending = [t for t in targets if t.active and t.model.has_image and t.images_done < n]
        if not pending:
            return
        start = min(t.images_done for t in pending)
        block = self._common_block_rows(pending)
        for t in pending:
            t.buffers = [
                np.zeros((block, t.writer.image_dim), dtype=self.request.store_dtype)
                for _ in range(1 + len(self.request.perturbations))
            ]
            t.valid = np.zeros(block, dtype=np.uint8)
        t0, done_here, last_report = time.time(), 0, 0.0
        block_start = start
        for indices, reasons, batches in self._loader(pending, manifest, start, block):
            self._record_skips(pending, manifest, indices, reasons)
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
                self._report_images(pending, manifest, last, done_here / max(now - t0, 1e-9))
            if self.stop and block_full:
                raise _StopRequested
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

    def _loader(
        self, pending: list[StoreTarget], manifest: Manifest, start: int, block: int
    ) -> DataLoader:
        """Decoding workers feeding batches that never straddle a store block."""
        dataset = ImageItems(
            manifest,
            [t.model.image_preprocess() for t in pending],
            start,
            [parse_perturbation(p) for p in self.request.perturbations],
            self.request.perturb_seed,
            self.decode_mode,
            self.draft_to,
            [self.tensor_transforms[t.model.spec.text] for t in pending]
            if self.decode_mode == "tensor"
            else [],
        )
        workers = self.request.num_workers
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        return DataLoader(
            dataset,
            batch_sampler=_block_batches(
                len(manifest.records) - start, self.request.batch_size, block
            ),
            num_workers=workers,
            collate_fn=collate_items,
            pin_memory=self.device.startswith("cuda"),
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )

    @staticmethod
    def _record_skips(
        pending: list[StoreTarget], manifest: Manifest, indices: list[int], reasons: list[str]
    ) -> None:
        for i, reason in zip(indices, reasons, strict=True):
            if not reason:
                continue
            for t in pending:
                if i >= t.images_done:
                    t.writer.add_skipped(manifest.records[i].id, reason)
                    t.skipped += 1

    def _embed(self, pending: list[StoreTarget], batches: list[Any], offsets: np.ndarray) -> None:
        """Run every pending image tower on its batch; rows land in the block buffers."""
        amp = self.device.startswith("cuda")
        amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        transforms = [self.tensor_transforms.get(t.model.spec.text) for t in pending]
        if self.decode_mode == "gpu" and batches:
            on_device = decode.gpu_batches(batches[0][0], transforms, self.device)
            batches = [[b] for b in on_device]
        for t, transform, sides in zip(pending, transforms, batches, strict=False):
            for buffer, batch in zip(t.buffers, sides, strict=True):
                inputs = _to_device(batch, self.device)
                if self.decode_mode == "tensor":  # the workers sent uint8 crops
                    inputs = transform.normalise(inputs)
                with torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
                    emb = t.model.encode_images(inputs)
                buffer[offsets] = emb.float().cpu().numpy().astype(self.request.store_dtype)
            t.valid[offsets] = 1

    def _flush(self, pending: list[StoreTarget], block_start: int, last: int) -> None:
        rows = last - block_start
        for t in pending:
            if block_start >= t.images_done:
                clean, *perturbed = (b[:rows] for b in t.buffers)
                t.writer.write_images(
                    block_start,
                    clean,
                    t.valid[:rows],
                    dict(zip(self.request.perturbations, perturbed, strict=True)),
                )
                t.images_done = last
            for buffer in t.buffers:
                buffer[:] = 0
            t.valid[:] = 0

    def _report_images(
        self, pending: list[StoreTarget], manifest: Manifest, last: int, rate: float
    ) -> None:
        n = len(manifest.records)
        for t in pending:
            self._progress(
                t,
                manifest,
                status="running",
                phase="images",
                images_per_s=rate,
                rows_seen=last,
                eta_s=(n - last) / rate if rate > 0 else None,
            )

    # -- main -------------------------------------------------------------------------
    def check_request(self) -> Manifest:
        """Reject bad arguments with one line each; returns the dataset's manifest."""
        req = self.request
        if not req.models:
            raise UsageError("no model given", hint="pass --model FAMILY:ID[@TAG]")
        if req.out is not None and len(req.models) > 1:
            raise UsageError(
                "--out names one store, but several models were given",
                hint="use --store-dir with several --model options",
            )
        if req.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {req.batch_size}")
        if req.limit is not None and req.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {req.limit}")
        req.perturbations = perturbation_names(req.perturbations)
        unknown = set(req.per_model_options) - set(req.models)
        if unknown:
            raise UsageError(
                f"--model-option names {sorted(unknown)[0]!r}, which is not a --model",
                hint="write SPEC::KEY=VALUE with SPEC exactly as given to --model",
            )
        manifest = req.manifest or load_manifest(
            req.dataset, req.data_root, req.split, req.limit, **req.dataset_options
        )
        if not manifest.records:
            raise DatasetError(f"dataset {req.dataset} split {manifest.split} has no images")
        return manifest

    def load_models(self, device: str) -> list[EmbeddingModel]:
        req = self.request
        return [
            load_model(spec, device, **{**req.model_options, **req.per_model_options.get(spec, {})})
            for spec in req.models
        ]

    def plan_decode(self, models: list[EmbeddingModel]) -> None:
        """Choose this pass's decode path (see `mgap.engine.extract.decode`); stores record it."""
        pres = {m.spec.text: m.image_preprocess() for m in models if m.has_image}
        decode.resolve_mode(self.request.decode, self.device, [])  # a bad value fails fast
        if not pres:
            return  # text-only models decode no images
        asked = self.request.decode
        if self.request.perturbations and asked not in ("auto", "exact"):
            raise UsageError(
                f"--decode {asked} cannot make --perturb sides (they are defined on full pixels)",
                hint="drop --decode or pass --decode exact",
            )
        if self.request.perturbations:
            asked = "exact"
        self.decode_mode = decode.resolve_mode(asked, self.device, list(pres.values()))
        self.draft_to = decode.draft_target(list(pres.values()))
        if self.decode_mode in ("tensor", "gpu"):
            self.tensor_transforms = {
                s: decode.TensorTransform.from_preprocess(p) for s, p in pres.items()
            }
        self.decode_line = decode.describe(self.decode_mode, self.draft_to)

    def run(self, manifest: Manifest | None = None) -> list[ExtractedStore]:
        manifest = manifest or self.check_request()
        self.device = resolve_device(self.request.device)
        models = self.load_models(self.device)
        self.plan_decode(models)
        try:
            targets = self.targets = [self._prepare(m, manifest, self.device) for m in models]
            return self._run_targets(targets, manifest)
        finally:
            for lock in self.locks:
                lock.release()

    def _run_targets(self, targets: list[StoreTarget], manifest: Manifest) -> list[ExtractedStore]:
        self.reporter(
            "start",
            {
                "device": self.device,
                "n_images": len(manifest.records),
                "models": list(self.request.models),
                "dataset": manifest.dataset,
                "split": manifest.split,
            },
        )
        status = self._execute(targets, manifest)
        return [self._summary(t, manifest, status) for t in targets]

    def _execute(self, targets: list[StoreTarget], manifest: Manifest) -> str:
        """Texts, images, prompts; the stores' final status whatever happens."""
        self.images_per_s = 0.0
        captions, _ = manifest.captions_and_rows()
        status = S.STATUS_COMPLETE
        error = ""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            with torch.inference_mode():
                for t in targets:
                    if t.active:
                        self._progress(t, manifest, status="running", phase="texts")
                        self._texts(t, captions, manifest)
                self._images(targets, manifest)
                for t in targets:
                    if self.with_prompts:
                        self.prompts(t, manifest)
        except _StopRequested:
            status = "cancelled"
        except DiskFullError as exc:
            status = STATUS_DISK_FULL
            error = exc.one_line()
            raise
        except BaseException as exc:
            status = S.STATUS_FAILED
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._finish(targets, manifest, status, error)
        return status

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop:  # a second Ctrl-C: stop now, the block in flight is lost
            raise KeyboardInterrupt
        self.stop = True
        self.reporter("note", {"message": "stopping after the block in flight"})

    def _finish(
        self, targets: list[StoreTarget], manifest: Manifest, status: str, error: str
    ) -> None:
        elapsed = time.time() - self.started
        for t in targets:
            if t.writer is None:
                continue
            if status == STATUS_DISK_FULL:
                # nothing more goes into the store: it stays partial and resumable
                with contextlib.suppress(OSError):
                    self._progress(t, manifest, status=S.STATUS_FAILED, phase="done", error=error)
                continue
            if status == S.STATUS_COMPLETE:
                t.writer.finish(S.STATUS_COMPLETE, seconds=round(elapsed, 3))
            elif status == S.STATUS_FAILED:
                t.writer.finish(S.STATUS_FAILED, error=error[:500])
            else:
                t.writer.finish(S.STATUS_PARTIAL)
            self._progress(
                t,
                manifest,
                status=status,
                phase="done",
                error=error,
                images_per_s=self.images_per_s,
                eta_s=0,
            )

    def _summary(self, t: StoreTarget, manifest: Manifest, status: str) -> ExtractedStore:
        store = Store(t.path)
        return ExtractedStore(
            store=str(t.path),
            model=t.model.spec.text,
            status=store.status if t.writer is None else status,
            n_images=store.n_images,
            n_texts=store.n_texts,
            skipped=len(store.skipped),
            seconds=round(time.time() - self.started, 3),
            images_per_s=round(self.images_per_s, 2),
            device=self.device,
            dtype=self.request.store_dtype,
            note=t.note,
        )


def _to_device(batch: Any, device: str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def run_extraction(
    request: ExtractRequest, reporter: Reporter | None = None
) -> list[ExtractedStore]:
    """Extract every model of `request` over its dataset; returns one summary per store.

    Under torchrun or srun (several ranks), each rank extracts its share and rank 0
    merges the shares (see `mgap.engine.extract.ranks`).
    """
    rank = detect_rank()
    if rank.distributed:
        from mgap.engine.extract.ranks import run_distributed

        return run_distributed(request, reporter, rank)
    return ExtractJob(request, reporter).run()
