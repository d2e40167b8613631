"""Each model's store, made ready to take rows: created new, or resumed after the inputs
are checked to be the ones the store was started with.

One writer per store: the job holds each store's lock (`mgap.store.lock`) from the
existence check to the end. A resume first re-checks that the inputs are the ones the
store was started with (rows, annotation hash, model, preprocessing, store dtype, decode
path) and the perturbation settings, then continues at the first unwritten block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from mgap import __version__
from mgap.core.errors import StoreError
from mgap.engine.datasets import Manifest
from mgap.engine.extract.request import CheckedRequest
from mgap.engine.models import EmbeddingModel
from mgap.store import schema as S
from mgap.store.layers import LayerSet
from mgap.store.naming import cache_path, progress_path
from mgap.store.reader import Store
from mgap.store.writer import StoreLayout, StoreWriter, create_store, now_iso

#: how a refused resume names an input whose attribute name says less than its option
INPUT_NAMES = {"precision": "store dtype (--store-dtype)"}


@dataclass
class StoreTarget:
    """One model's store during a run, and how far it has got."""

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
    #: per side, the layers `--layers` stores (`mgap.engine.extract.layer_plan`)
    layers: dict[str, LayerSet] = field(default_factory=dict)
    #: one block buffer per image layer dataset, by name
    layer_buffers: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.writer is not None


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


def provenance(
    request: CheckedRequest,
    model: EmbeddingModel,
    manifest: Manifest,
    device: str,
    decode_line: str,
) -> dict:
    """The attributes a new store records about how its rows were made."""
    described = model.describe()
    # the store's `precision` is the storage dtype; an adapter's compute precision
    # (BLIP, LLaVA, ViLT) is kept as `model_precision` instead of overwriting it
    if "precision" in described:
        described["model_precision"] = described.pop("precision")
    return {
        **described,
        "compute_dtype": "autocast" if device.startswith("cuda") else "float32",
        "device": device,
        "batch_size": request.batch_size,
        "dataset": manifest.dataset,
        "split": manifest.split,
        "data_root": manifest.root,
        "annotation_sha256": manifest.annotation_sha256,
        **manifest.provenance,
        "decode": decode_line,
        "library_versions": _library_versions(),
        "command": request.command,
        "mgap_version": __version__,
    }


def _probe_dims(model: EmbeddingModel) -> tuple[int | None, int | None]:
    """Embedding sizes from one tiny forward pass (also proves the model runs)."""
    image_dim = text_dim = None
    with torch.inference_mode():
        if model.has_image:
            image_dim = int(model.encode_images(_grey_batch(model)).shape[-1])
        if model.has_text:
            text_dim = int(model.encode_texts(["a photo."]).shape[-1])
    return image_dim, text_dim


def _grey_batch(model: EmbeddingModel) -> object:
    from PIL import Image

    sample = model.image_preprocess()(Image.new("RGB", (64, 64), (127, 127, 127)))
    return default_collate([sample])


def probe_layer_widths(model: EmbeddingModel, plan: Mapping[str, LayerSet]) -> dict[str, LayerSet]:
    """`plan` with each space's vector width, from one tiny pass per side."""
    out = {}
    with torch.inference_mode():
        for side, ls in plan.items():
            if side == "image":
                _, states = model.encode_images_layers(_grey_batch(model), ls.layers, ls.spaces)
            else:
                _, states = model.encode_texts_layers(["a photo."], ls.layers, ls.spaces)
            widths = {sp: int(getattr(states, sp).shape[-1]) for sp in ls.spaces}
            out[side] = dataclasses.replace(ls, widths=widths)
    return out


def _remove_store(path: Path) -> None:
    for p in (
        path,
        progress_path(path),
        cache_path(path),
        path.with_name(path.name + ".skipped.jsonl"),
    ):
        p.unlink(missing_ok=True)


def prepare_store(
    request: CheckedRequest,
    model: EmbeddingModel,
    path: Path,
    device: str,
    decode_line: str,
    layers: Mapping[str, LayerSet] | None = None,
) -> StoreTarget:
    """`path` (whose lock the caller holds) ready for `model`'s rows: new, or resumed;
    `layers` are the per-layer states `--layers` stores (`layer_plan.plan_layers`)."""
    manifest = request.manifest
    target = StoreTarget(model, path, layers=dict(layers or {}))
    layout = store_layout(manifest)
    if path.exists():
        if request.overwrite:
            _remove_store(path)
        elif not request.resume:
            raise StoreError(f"{path} already exists", hint="pass --resume or --overwrite")
        else:
            return resume_store(request, target, layout, decode_line)
    image_dim, text_dim = _probe_dims(model)
    target.layers = probe_layer_widths(model, target.layers)
    target.writer = create_store(
        path,
        layout,
        {
            **provenance(request, model, manifest, device, decode_line),
            "rows_sha256": layout.digest(),
        },
        image_dim=image_dim,
        text_dim=text_dim,
        dtype=request.store_dtype,
        block_rows=request.block_rows,
        perturbations=request.perturbation_names,
        perturb_seed=request.perturb_seed,
        layers=target.layers,
    )
    if not model.has_image:
        target.images_done = len(manifest.records)
    return target


# ---- resume -------------------------------------------------------------------------
def _json_list(value: object) -> list:
    """A JSON list stored as a string attribute ([] when absent or unreadable)."""
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else []
    except json.JSONDecodeError:
        return []
    return parsed if isinstance(parsed, list) else []


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


def _resume_inputs(
    request: CheckedRequest, model: EmbeddingModel, layout: StoreLayout, decode_line: str
) -> dict[str, object]:
    """The provenance values that must match for a resume to continue a store."""
    described = model.describe()
    return {
        "model": model.spec.text,
        "rows_sha256": layout.digest(),
        "annotation_sha256": request.manifest.annotation_sha256,
        "weights": described.get("weights"),
        "preprocessing": described.get("preprocessing"),
        "embedding_image": described.get("embedding_image"),
        "embedding_text": described.get("embedding_text"),
        "precision": request.store_dtype,
        "decode": decode_line,
    }


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


def _layers_text(layers: Mapping[str, LayerSet]) -> str:
    return "; ".join(
        f"{side} {','.join(map(str, ls.layers))} {'+'.join(ls.spaces)}"
        for side, ls in sorted(layers.items())
    )


def _check_same_layers(path: Path, store: Store, wanted: Mapping[str, LayerSet]) -> None:
    """A resume stores the same layers, spaces and definitions the store was made with."""

    def key(layers: Mapping[str, LayerSet]) -> dict[str, tuple]:
        return {s: (ls.layers, ls.spaces, ls.pooling, ls.lens) for s, ls in layers.items()}

    if key(store.layer_sets) != key(wanted):
        raise StoreError(
            f"{path} was started with per-layer states "
            f"({_layers_text(store.layer_sets) or 'none'}), not "
            f"({_layers_text(wanted) or 'none'})",
            hint="pass the same --layers/--layer-space, or --overwrite to replace the store",
        )


def _check_resumable(
    request: CheckedRequest, target: StoreTarget, store: Store, layout: StoreLayout, line: str
) -> None:
    path = target.path
    _check_same_inputs(path, store, _resume_inputs(request, target.model, layout, line))
    _check_same_perturbations(path, store, request.perturbation_names, request.perturb_seed)
    if list(store.all_image_ids) != [r.id for r in request.manifest.records]:
        raise StoreError(
            f"{path} holds other image rows ({store.n_images_total} images)",
            hint="pass --overwrite to start it again, or choose another --store-dir/--out",
        )


def resume_store(
    request: CheckedRequest, target: StoreTarget, layout: StoreLayout, decode_line: str
) -> StoreTarget:
    """Continue `target`'s store where it stopped, recording the resume in its attributes."""
    store = Store(target.path)
    _check_resumable(request, target, store, layout, decode_line)
    wanted_layers, target.layers = target.layers, dict(store.layer_sets)  # stored widths
    writer = StoreWriter(target.path)
    target.images_done, target.texts_done = writer.progress()
    complete = writer.status == S.STATUS_COMPLETE
    if wanted_layers or not complete:  # a plain rerun leaves a complete store as it is
        _check_same_layers(target.path, store, wanted_layers)
    if complete:
        target.note = "already complete"
        target.skipped = len(store.skipped)
        return target
    resumes = _json_list(store.attrs.get("resumes"))
    resumes.append(
        {
            "at": now_iso(),
            "batch_size": request.batch_size,
            "images_done": target.images_done,
            "texts_done": target.texts_done,
            "command": request.command,
        }
    )
    writer.set_attrs(resumes=resumes)
    target.writer = writer
    target.skipped = len(writer.journal_entries())
    target.note = f"resumed at image row {target.images_done}"
    if str(store.attrs.get("batch_size")) != str(request.batch_size):
        target.note += f" with batch size {request.batch_size} (recorded)"
    return target
