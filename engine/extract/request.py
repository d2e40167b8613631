"""A request checked once: `check_request` turns what the user asked for into a frozen
`CheckedRequest` that the job, the ranks and the loader trust without checking again.

Every option is checked here, before any model loads and without importing torch, so a
bad option fails in a fraction of a second (docs/design.md §6). What only a loaded model
can tell (whether its transform has a tensor twin) is decided by the decode plan
(`mgap.engine.extract.loader.plan_decode`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgap.core.errors import DatasetError, UsageError
from mgap.engine.datasets import Manifest, load_manifest
from mgap.engine.extract.decode import check_mode
from mgap.engine.extract.layer_plan import LayerChoice, parse_layers
from mgap.engine.extract.perturb import Perturbation, parse_perturbation, perturbation_names
from mgap.engine.specs import parse_model_spec
from mgap.store import schema as S
from mgap.store.naming import default_store_dir, store_filename

#: what `--store-dtype` accepts
STORE_DTYPES = ("float16", "float32")


@dataclass
class ExtractRequest:
    """What the user asked for, as given (the CLI's options, or a library call)."""

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
    #: an already loaded manifest (else `check_request` loads it)
    manifest: Manifest | None = None
    #: image decoding: auto, tensor, draft (PIL JPEG draft), exact (the model's own transform), gpu
    decode: str = "auto"
    #: perturbation settings (`noise:0.05`, `blur:3`, `occlude:64`), stored beside the clean side
    perturbations: Sequence[str] = ()
    #: named sets of perturbation settings (`--perturb-suite rtml`), expanded before the rest
    perturb_suites: Sequence[str] = ()
    perturb_seed: int = 0
    #: `--layers all|0,4,8,-1` and `--layer-space raw|lens|both` (None: not asked for)
    layers: str | None = None
    layer_space: str | None = None


@dataclass(frozen=True)
class ModelRequest:
    """One model of a checked request: its spec, its options and where its store goes."""

    spec: str
    options: Mapping[str, Any]
    store: Path


@dataclass(frozen=True)
class CheckedRequest:
    """A request whose every option was checked; built only by `check_request`."""

    models: tuple[ModelRequest, ...]
    manifest: Manifest
    batch_size: int
    #: as asked (auto, cpu, cuda[:i]); the job resolves it when torch is loaded
    device: str
    store_dtype: str
    resume: bool
    overwrite: bool
    wait: bool
    num_workers: int
    block_rows: int
    command: str
    #: the decode mode asked for, a known one; `--perturb` sides always decode exactly
    decode: str
    perturbations: tuple[Perturbation, ...]
    perturb_seed: int
    #: per-layer states to store beside the embeddings; None without --layers
    layers: LayerChoice | None = None

    @property
    def specs(self) -> list[str]:
        return [m.spec for m in self.models]

    @property
    def perturbation_names(self) -> list[str]:
        """The image sides beside the clean one, by their store keys."""
        return [p.name for p in self.perturbations]


def _check_store_options(req: ExtractRequest) -> None:
    if req.store_dtype not in STORE_DTYPES:
        raise UsageError(
            f"--store-dtype must be float16 or float32, got {req.store_dtype!r}",
            hint="float16 halves the store; float32 keeps every bit the model computed",
        )
    if not 1 <= req.block_rows <= S.MAX_BLOCK_ROWS:
        raise UsageError(f"--block-rows must be in 1..{S.MAX_BLOCK_ROWS}, got {req.block_rows}")
    if req.num_workers is not None and req.num_workers < 0:
        raise UsageError(
            f"--workers must be 0 or more, got {req.num_workers}", hint="0 decodes in-process"
        )
    store_dir = Path(req.store_dir) if req.store_dir is not None else None
    out = Path(req.out) if req.out is not None else None
    if store_dir is not None and store_dir.exists() and not store_dir.is_dir():
        raise UsageError(f"--store-dir {store_dir} is a file", hint="give a folder")
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="give the path of the .h5 file")
    if store_dir is not None and out is not None:
        raise UsageError("--store-dir and --out exclude each other", hint="give one of them")


def _check_models(req: ExtractRequest) -> None:
    if not req.models:
        raise UsageError("no model given", hint="pass --model FAMILY:ID[@TAG]")
    for spec in req.models:
        parse_model_spec(spec)
    if req.out is not None and len(req.models) > 1:
        raise UsageError(
            "--out names one store, but several models were given",
            hint="use --store-dir with several --model options",
        )
    unknown = set(req.per_model_options) - set(req.models)
    if unknown:
        raise UsageError(
            f"--model-option names {sorted(unknown)[0]!r}, which is not a --model",
            hint="write SPEC::KEY=VALUE with SPEC exactly as given to --model",
        )


def _check_decode(req: ExtractRequest, perturbations: Sequence[Perturbation]) -> None:
    # `auto` may still become CUDA, so only an explicit non-CUDA device rules out `gpu`
    check_mode(req.decode, "cuda" if req.device == "auto" else req.device)
    if perturbations and req.decode not in ("auto", "exact"):
        raise UsageError(
            f"--decode {req.decode} cannot make --perturb sides (they are defined on full pixels)",
            hint="drop --decode or pass --decode exact",
        )


def _load_manifest(req: ExtractRequest) -> Manifest:
    manifest = req.manifest or load_manifest(
        req.dataset, req.data_root, req.split, req.limit, **req.dataset_options
    )
    if not manifest.records:
        raise DatasetError(f"dataset {req.dataset} split {manifest.split} has no images")
    return manifest


def _store_path(req: ExtractRequest, spec: str, manifest: Manifest) -> Path:
    """Where the store of model `spec` goes: --out, or its standard name in the store dir."""
    if req.out is not None:
        return Path(req.out)
    root = Path(req.store_dir) if req.store_dir else default_store_dir()
    return root / store_filename(manifest.dataset, manifest.split, spec)


def check_request(req: ExtractRequest) -> CheckedRequest:
    """Reject bad arguments with one line each, load the dataset's manifest, and return
    the request everything downstream trusts."""
    _check_store_options(req)
    _check_models(req)
    if req.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {req.batch_size}")
    if req.limit is not None and req.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {req.limit}")
    names = perturbation_names(req.perturbations, req.perturb_suites)
    perturbations = tuple(parse_perturbation(name) for name in names)
    layers = parse_layers(req.layers, req.layer_space)
    _check_decode(req, perturbations)
    manifest = _load_manifest(req)
    models = tuple(
        ModelRequest(
            spec,
            {**req.model_options, **req.per_model_options.get(spec, {})},
            _store_path(req, spec, manifest),
        )
        for spec in req.models
    )
    workers = req.num_workers
    return CheckedRequest(
        models=models,
        manifest=manifest,
        batch_size=req.batch_size,
        device=req.device,
        store_dtype=req.store_dtype,
        resume=req.resume,
        overwrite=req.overwrite,
        wait=req.wait,
        num_workers=min(4, os.cpu_count() or 1) if workers is None else workers,
        block_rows=req.block_rows,
        command=req.command,
        decode=req.decode,
        perturbations=perturbations,
        perturb_seed=req.perturb_seed,
        layers=layers,
    )
