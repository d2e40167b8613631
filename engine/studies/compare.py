"""`mgap compare`: one row per store, every store on the same images (docs/design.md §7).

The default is the image ids all stores share. When every store holds exactly those ids,
each row comes from the studies' own cached reports (`gap_report` without separability,
`retrieval_report`, `zero_shot_report`), so a second run reads only the sidecar caches.
When some store holds more, every row is computed on the shared ids alone (the same
measures on the subset) and kept in the store's sidecar cache under those ids.
Stores on different datasets are refused unless `allow_mixed`; each is then measured on
its own images and the document says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.gap import gap_metrics
from mgap.engine.measures.retrieval import score_ranks, summarise_ranks
from mgap.engine.measures.zeroshot import zero_shot
from mgap.engine.reports.analysis import GapMetrics, Recall
from mgap.engine.reports.compare import CompareReport, CompareRow
from mgap.engine.studies.compare_cache import cached_rows, digests_of, remember
from mgap.engine.studies.compare_scope import Scope, common_ids, plan_scope
from mgap.engine.studies.gap import gap_report
from mgap.engine.studies.gap_cache import content_digest
from mgap.engine.studies.retrieval import recall, retrieval_report
from mgap.engine.studies.scores import store_score
from mgap.engine.studies.trajectory import by_step, check_steps, trajectory_block
from mgap.engine.studies.zeroshot import zero_shot_inputs, zero_shot_report
from mgap.store import Store, schema
from mgap.store.cache import cache_key, load_cached, save_cached
from mgap.store.naming import cache_path
from mgap.store.probe import probe_many

GAP_METRICS = ("l2m", "rmg", "paired_cosine", "intra_image_cosine", "intra_text_cosine")
PERFORMANCE_METRICS = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "zeroshot_top1")
#: model-side columns, read from store attributes written at extraction (None: absent)
MODEL_METRICS = ("logit_scale", "step")
METRICS = GAP_METRICS + PERFORMANCE_METRICS + MODEL_METRICS
SUBSET_KIND = "compare-subset"


def open_compared(paths: list[str]) -> list[Store]:
    """The stores, their HDF5 metadata (and their sidecar caches') probed in one child
    process first (`probe_many`), rather than one child per file as each is opened."""
    if len(paths) < 1:
        raise UsageError("compare needs at least one STORE")
    probe_many([*paths, *(c for c in map(cache_path, paths) if c.exists())])
    stores = [Store(p) for p in paths]
    for store in stores:
        if not (store.has_images and store.has_texts):
            raise StoreError(
                f"compare needs image and text embeddings; {store.path.name} has one side",
                hint="compare two-tower stores (CLIP, SigLIP, BLIP)",
            )
    return stores


def shared_ids(stores: list[Store], allow_mixed: bool) -> set[str] | None:
    """The image ids every store holds, or None (allow_mixed on different datasets)."""
    return common_ids(
        [s.dataset for s in stores], [s.image_ids.tolist() for s in stores], allow_mixed
    )


def model_attributes(store: Store) -> dict:
    """{"logit_scale", "step"} from the store's attributes: `logit_scale` (the multiplier,
    e.g. 100), else 1/`temperature`; `checkpoint_step` (written at extraction), else
    `step`, else `epoch`."""
    attrs = store.attrs
    scale = attrs.get("logit_scale")
    if scale is None and attrs.get("temperature"):
        scale = 1.0 / float(attrs["temperature"])
    step = next((attrs[k] for k in ("checkpoint_step", "step", "epoch") if k in attrs), None)
    return {
        "logit_scale": None if scale is None else float(scale),
        "step": None if step is None else int(step),
    }


def _gap_columns(gap: GapMetrics) -> dict:
    return {
        "l2m": gap.l2m,
        "rmg": gap.rmg,
        "paired_cosine": gap.mean_paired_cosine,
        "intra_image_cosine": gap.intra_image_cosine,
        "intra_text_cosine": gap.intra_text_cosine,
    }


def _retrieval_columns(i2t: Recall, t2i: Recall) -> dict:
    return {"i2t_r1": i2t.r1, "i2t_r5": i2t.r5, "t2i_r1": t2i.r1, "t2i_r5": t2i.r5}


def has_class_prompts(store: Store) -> bool:
    return schema.PROMPT_SET_CATEGORY in store.prompt_sets


def _row_head(store: Store, n_images: int, n_texts: int) -> dict:
    return {
        "store": str(store.path),
        "model": store.model,
        "dataset": store.dataset,
        "split": store.split,
        "geometry": store.geometry,
        "n_images": int(n_images),
        "n_texts": int(n_texts),
    }


def full_row(store: Store, backend: Backend) -> CompareRow:
    """The row from the studies' cached reports, over all of the store's rows."""
    gap = gap_report(store, separability=False, backend=backend)
    retrieval = retrieval_report(store, backend=backend)
    top1 = zero_shot_report(store).accuracy if has_class_prompts(store) else None
    return CompareRow.build(
        **_row_head(store, retrieval.n_images, retrieval.n_texts),
        **_gap_columns(gap),
        **_retrieval_columns(retrieval.i2t, retrieval.t2i),
        zeroshot_top1=top1,
        **model_attributes(store),
        cached=bool(gap.extra.get("cached")) and bool(retrieval.cached),
    )


def subset_pairs(store: Store, ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image positions of `ids` in their order, caption positions, caption -> image index
    into those image positions) of one store."""
    position = {key: i for i, key in reversed(list(enumerate(store.image_ids.tolist())))}
    images = np.asarray([position[key] for key in ids], dtype=np.int64)
    slot = np.full(store.n_images, -1, dtype=np.int64)
    slot[images] = np.arange(images.size)
    owner = slot[store.text_image_index]
    captions = np.flatnonzero(owner >= 0)
    return images, captions, owner[captions]


def _subset_params(store: Store, ids: list[str], backend: Backend) -> dict:
    digest = hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()[:16]
    return {"content": content_digest(store), "ids": digest, "compute": backend.describe()}


def _subset_measures(store: Store, ids: list[str], backend: Backend) -> dict:
    """Gap, retrieval and zero-shot on the shared ids only (the same measures): the
    measured columns of the row, as the sidecar cache keeps them (JSON)."""
    images, captions, index = subset_pairs(store, ids)
    X = store.embedding_subset("image", images, np.float32)
    Y = store.embedding_subset("text", captions, np.float32)
    gap = GapMetrics.build(**gap_metrics(X, Y, index))
    i2t, t2i = score_ranks(X, Y, index, store_score(store), backend=backend)
    out = {
        **_row_head(store, images.size, captions.size),
        **_gap_columns(gap),
        **_retrieval_columns(recall(summarise_ranks(i2t)), recall(summarise_ranks(t2i))),
        "zeroshot_top1": None,
    }
    if has_class_prompts(store):
        names, classes, truth = zero_shot_inputs(store)
        out["zeroshot_top1"] = zero_shot(X, classes, truth[images], names, store_score(store))[
            "accuracy"
        ]
    return out


def subset_row(store: Store, ids: list[str], backend: Backend) -> CompareRow:
    """The row on the shared ids, from the sidecar cache when it holds them."""
    params = _subset_params(store, ids, backend)
    key = cache_key(SUBSET_KIND, params)
    found = load_cached(store, key)
    if found is not None and "json" in found:
        columns = json.loads(found["json"].tobytes().decode("utf-8"))
        return CompareRow.from_json({**columns, "cached": True, **model_attributes(store)})
    columns = _subset_measures(store, ids, backend)
    data = np.frombuffer(json.dumps(columns).encode("utf-8"), dtype=np.uint8)
    with contextlib.suppress(OSError):  # a read-only folder only costs the next run its time
        save_cached(store, key, {"json": data}, params)
    return CompareRow.build(**columns, cached=False, **model_attributes(store))


def sort_rows(rows: list[CompareRow], sort: str | None) -> list[CompareRow]:
    """Rows by `sort` (a column; `-column` for descending), missing values last."""
    if sort is None:
        return rows
    name = sort.lstrip("-")
    if name not in (*METRICS, "model", "store", "n_images"):
        raise UsageError(
            f"--sort must be a column of the table, got {sort!r}",
            hint=f"one of: {', '.join(METRICS)}, model, store, n_images",
        )
    present = [r for r in rows if getattr(r, name) is not None]
    missing = [r for r in rows if getattr(r, name) is None]
    return sorted(present, key=lambda r: getattr(r, name), reverse=sort.startswith("-")) + missing


def _head(store: Store) -> dict:
    """What the cached path decides the scope from (`compare_cache.py`)."""
    return {
        "dataset": store.dataset,
        "ids": store.image_ids.tolist(),
        "step": model_attributes(store)["step"],
    }


def measured(
    paths: list[str], allow_mixed: bool, by: str | None, be: Backend
) -> tuple[Scope, list[CompareRow]]:
    """The rows with every store opened (cached per study where they can be), and the
    cached path's entries kept for the next run."""
    stores = open_compared(paths)
    digests = digests_of(paths)
    heads = [_head(s) for s in stores]
    if by is not None:
        check_steps({str(s.path): h["step"] for s, h in zip(stores, heads, strict=True)})
    scope = plan_scope([h["dataset"] for h in heads], [h["ids"] for h in heads], allow_mixed)
    if scope.ids is None:
        rows = [full_row(s, be) for s in stores]
    else:
        rows = [subset_row(s, scope.ids, be) for s in stores]
    remember(paths, digests, heads, scope, rows, be.describe())
    return scope, rows


def compare_report(
    paths: list[str],
    *,
    allow_mixed: bool = False,
    sort: str | None = None,
    by: str | None = None,
    backend: Backend | None = None,
) -> CompareReport:
    """The `mgap compare` report without its optional analyses (`correlation`, `paired`:
    the command adds them with `with_fields`); `by="step"` orders the rows by checkpoint
    step (a store without one is refused before anything is measured) and adds the
    trajectory. Rows come from the cached path when every store has its entries."""
    if len(paths) < 1:
        raise UsageError("compare needs at least one STORE")
    be = backend or resolve_backend("cpu")
    found = cached_rows(paths, allow_mixed, be.describe())
    if found is not None:
        scope, rows, heads = found
        if by is not None:
            check_steps({p: h["step"] for p, h in zip(paths, heads, strict=True)})
    else:
        scope, rows = measured(paths, allow_mixed, by, be)
    report = CompareReport.build(
        n_stores=len(paths),
        shared_ids=None if scope.common is None else len(scope.common),
        scope=scope.text,
        sort=sort,
        rows=by_step(rows) if by else sort_rows(rows, sort),
    )
    return report.with_fields(trajectory=trajectory_block(report.rows, by)) if by else report


def short_name(row: CompareRow) -> str:
    """A point label: the model, else the store's file name."""
    return row.model or Path(row.store).name
