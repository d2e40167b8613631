"""`mgap gap` on a store (docs/design.md §7): the §6 keys at top level, the per-category
results and, for Lorentz stores, the hyperbolic analysis; the metrics themselves are
`mgap.engine.measures.gap` (and `class_texts`, `categories`, `hyperbolic`).

Embeddings are read in float32 (no float64 copy of a side); only the category
mean-pairwise table is quadratic, and it runs on the backend, exact or sampled. The
document is kept in the store's sidecar cache (`gap_cache`), keyed by the store's content
and the request; a repeated call answers from it without reading the embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.categories import category_breakdown
from mgap.engine.measures.class_texts import (
    ClassLayout,
    class_gap_metrics,
    class_texts,
    classification_layout,
)
from mgap.engine.measures.gap import first_caption_rows, gap_metrics
from mgap.engine.measures.pairwise_table import choose_sample, table_flops
from mgap.engine.reports.analysis import (
    CategoryRow,
    CategoryTable,
    Compute,
    GapReport,
    RankedCategory,
)
from mgap.engine.reports.groups import GroupsReport
from mgap.engine.studies import gap_cache
from mgap.engine.studies.gap_request import GapRequest
from mgap.engine.studies.hyperbolic import gap_metrics_part, hyperbolic_report
from mgap.engine.studies.pairs import store_header, store_pairs
from mgap.engine.studies.work import Work, phase
from mgap.store import Store
from mgap.store.schema import GEOMETRY_LORENTZ


def _class_layout(store: Store, captions: str, index: np.ndarray) -> ClassLayout | None:
    """The classification layout of the analysed caption rows, or None (captioned data)."""
    if not store.category_names:
        return None
    texts = store.captions
    if captions == "first":
        texts = texts[first_caption_rows(store.text_image_index)]
    return classification_layout(texts, index, store.primary_category)


def _check_store(store: Store) -> None:
    """A one-line StoreError when the store cannot give the report."""
    if store.geometry == GEOMETRY_LORENTZ and store.curvature == 0:
        raise StoreError(
            f"{store.path.name} is a Lorentz store without a curvature",
            hint="re-import it with `mgap import --geometry lorentz --curvature C`",
        )


def _check_categories(store: Store, request: GapRequest) -> None:
    if request.by_category and not store.category_names:
        raise StoreError(
            f"{store.path.name} has no category labels, so --by-category has nothing to split",
            hint="extract from a dataset with categories (COCO instances, image folders)",
        )


def _text_side(store: Store, request: GapRequest, X, Y, index) -> tuple[dict, dict]:
    """(the text side's description, the §7 metrics): over the captions, or over one text per
    class on classification stores (`text_side="auto"`)."""
    layout = _class_layout(store, request.captions, index) if request.text_side == "auto" else None
    options = {"top_k": request.top_k, "separability": request.separability}
    if layout is None:
        return {"text_side": "captions"}, gap_metrics(X, Y, index, **options)
    metrics = class_gap_metrics(X, class_texts(Y, layout), layout.image_class, **options)
    side = {
        "text_side": "unique_class_texts",
        "n_text_rows": int(Y.shape[0]),
        "templates_per_class": layout.templates_per_class,
    }
    return side, metrics


def _categories(store: Store, request: GapRequest, X, Y, index, be: Backend) -> dict[str, Any]:
    """The per-category rows, category x category tables and ranking, with the quadratic
    table's cost estimate and progress."""
    n, m, d = X.shape[0], Y.shape[0], X.shape[1]
    flops = table_flops(n, m, d, choose_sample(n, m, be, request.sample, request.exact))
    with Work("category mean-pairwise table", n, flops, be) as work:
        found = category_breakdown(
            X,
            Y,
            index,
            store.primary_category,
            store.category_names,
            store.supercategory_of,
            top_k=request.top_k,
            backend=be,
            sample=request.sample,
            exact=request.exact,
            seed=request.seed,
            progress=work.advance,
        )
    return {
        "by_category": [gap_metrics_part(row, CategoryRow) for row in found["by_category"]],
        "category_centroid_distances": _table(found["category_centroid_distances"]),
        "category_pairwise_distances": _table(found["category_pairwise_distances"]),
        "category_ranking": [RankedCategory(**row) for row in found["category_ranking"]],
    }


def _table(doc: dict[str, Any]) -> CategoryTable:
    declared = ("definition", "names", "matrix", "mode", "n")
    rest = {k: v for k, v in doc.items() if k not in declared}
    return CategoryTable(**{k: doc[k] for k in declared}, extra=rest)


def _computed(store: Store, request: GapRequest, be: Backend, params: dict) -> GapReport:
    """The report computed from the embeddings (and kept in the cache)."""
    lorentz = store.geometry == GEOMETRY_LORENTZ
    phase("reading the store")
    dtype = np.float64 if lorentz else np.float32
    X, Y, index = store_pairs(store, captions=request.captions, what="gap", dtype=dtype)
    _check_categories(store, request)
    phase("gap metrics")
    side, metrics = _text_side(store, request, X, Y, index)
    parts = {**store_header(store), "captions": request.captions, **side}
    report = gap_metrics_part(metrics, GapReport, **parts, compute=Compute.build(**be.describe()))
    if request.by_category and not lorentz:  # the summary a plain `mgap gap` gives, kept first
        summary = gap_cache.gap_params(store, request.summary(), be.describe())
        gap_cache.save_gap(store, summary, report.to_json())
    if request.by_category:
        report = _with(report, **_categories(store, request, X, Y, index, be))
    if lorentz:
        curvature = abs(store.curvature)
        hyperbolic = hyperbolic_report(X, Y, index, curvature, top_k=request.top_k)
        report = _with(report, hyperbolic=hyperbolic)
    gap_cache.save_gap(store, params, report.to_json())
    return report


def _with(report: GapReport, **parts: Any) -> GapReport:
    """`report` with more of its optional parts filled in."""
    return replace(report, **parts, _absent=report._absent - parts.keys())


def gap_report(
    store: Store,
    request: GapRequest | None = None,
    *,
    backend: Backend | None = None,
    groups: Callable[[], GroupsReport] | None = None,
    **options: Any,
) -> GapReport:
    """The `mgap gap` report of `request` (or of `GapRequest(**options)`), from the sidecar
    cache when it has it; `groups()` (the `--groups` document) is added, never cached.

    A `by_category` report also keeps its summary (the request without `by_category`) in
    the cache as soon as it has it, for the TUI's first numbers."""
    request = request or GapRequest(**options)
    _check_store(store)
    be = backend or resolve_backend("cpu")
    params = gap_cache.gap_params(store, request, be.describe())
    cached = gap_cache.load_gap(store, params)
    report = (
        GapReport.from_json(cached) if cached is not None else _computed(store, request, be, params)
    )
    return report if groups is None else _with(report, groups=groups())
