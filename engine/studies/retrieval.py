"""`mgap retrieval` on a store: exact or sampled ranks (`mgap.engine.measures.retrieval`),
kept in the sidecar cache, summarised overall, per category and per group."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.categories import category_groups
from mgap.engine.measures.retrieval import (
    Ranks,
    retrieval_ranks,
    score_ranks,
    summarise_ranks,
    with_interval,
)
from mgap.engine.measures.retrieval_sample import sampled_ranks
from mgap.engine.measures.rows import unit_rows_
from mgap.engine.measures.sampling import exact_info, sampled_info
from mgap.engine.measures.scores import COSINE, LORENTZ_DISTANCE, Prepared, Score
from mgap.engine.reports.analysis import (
    Compute,
    Estimate,
    Recall,
    RetrievalCategory,
    RetrievalReport,
)
from mgap.engine.reports.groups import GroupsReport
from mgap.engine.studies.pairs import store_header, store_pairs
from mgap.engine.studies.scores import store_score
from mgap.engine.studies.work import Work
from mgap.store import Store
from mgap.store.cache import cache_key, load_cached, save_cached


def _prepared_in_place(score: Score, X: np.ndarray, Y: np.ndarray) -> Prepared:
    """Cosine rows normalised in place (float32, no copy); other scores prepare copies."""
    if score.name == COSINE or not score.curved:
        return Prepared(score, unit_rows_(X), unit_rows_(Y))
    return score.prepare(X, Y)


_RANK_FIELDS = ("above", "tied", "right_tied", "valid")

#: interactive views (the TUI) sample retrieval queries on the CPU above this many
#: (image, caption) pairs, so that a COCO-train-sized store answers in minutes, not hours
INTERACTIVE_EXACT_CELLS = 2_000_000_000
INTERACTIVE_SAMPLE = 5000


def interactive_sample(store: Store) -> int | None:
    """Queries per direction for an interactive view of this store, or None for exact."""
    if store.n_images * store.n_texts <= INTERACTIVE_EXACT_CELLS:
        return None
    return None if resolve_backend("auto").device.startswith("cuda") else INTERACTIVE_SAMPLE


def load_ranks(store: Store, params: dict):
    """(i2t, t2i, image rows, caption rows) from the store's sidecar cache, or None."""
    got = load_cached(store, cache_key("retrieval-ranks", params))
    if got is None:
        return None
    i2t, t2i = (Ranks(*(got[f"{side}_{f}"] for f in _RANK_FIELDS)) for side in ("i2t", "t2i"))
    return i2t, t2i, got["image_rows"], got["caption_rows"]


def rank_params(chosen: Score, captions: str, sample: int | None, seed: int) -> dict:
    """What the cached ranks depend on besides the store's rows (the cache key's params)."""
    return {"captions": captions, **chosen.describe(), "sample": sample, "seed": seed}


def has_cached_ranks(
    store: Store,
    *,
    captions: str = "all",
    score: str | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> bool:
    """Whether `retrieval_report` with these arguments would answer from the sidecar cache
    (the TUI checks this before it starts a retrieval job)."""
    params = rank_params(store_score(store, score), captions, sample, seed)
    return load_ranks(store, params) is not None


def _save_ranks(store: Store, params: dict, i2t: Ranks, t2i: Ranks, img_rows, cap_rows) -> None:
    """Keep the per-query ranks beside the store, so a repeated report is instant; a cache
    that cannot be written (a read-only folder) only costs the next run its time."""
    arrays = {
        f"{side}_{f}": getattr(r, f)
        for side, r in (("i2t", i2t), ("t2i", t2i))
        for f in _RANK_FIELDS
    }
    arrays.update(image_rows=img_rows, caption_rows=cap_rows)
    with contextlib.suppress(OSError):
        save_cached(store, cache_key("retrieval-ranks", params), arrays, params)


@dataclass(frozen=True)
class Ranked:
    """The ranks of one report's queries: per image (i2t) and per caption (t2i), the store
    rows they are for (every row when exact), and the caption -> image index."""

    i2t: Ranks
    t2i: Ranks
    image_rows: np.ndarray
    caption_rows: np.ndarray
    index: np.ndarray
    cached: bool


def _check(store: Store, chosen: Score, by_category: bool, sample, groups) -> None:
    if by_category and not store.category_names:
        raise StoreError(
            f"{store.path.name} has no category labels, so --by-category has nothing to split",
            hint="extract from a dataset with categories (COCO instances, image folders)",
        )
    if sample is not None and (groups is not None or chosen.name not in (COSINE, LORENTZ_DISTANCE)):
        raise UsageError(
            "--sample works with the cosine and lorentz_distance scores, without --groups",
            hint="drop --sample for exact retrieval",
        )


def _exact(chosen: Score, X, Y, index, be: Backend) -> tuple[Ranks, Ranks]:
    n, m, d = X.shape[0], Y.shape[0], X.shape[1]
    with Work("exact retrieval", n, 2.0 * n * m * d, be) as work:
        if chosen.curved:
            return score_ranks(X, Y, index, chosen, backend=be, progress=work.advance)
        prepared = _prepared_in_place(chosen, X, Y)
        return retrieval_ranks(X, Y, index, backend=be, progress=work.advance, prepared=prepared)


def _sampled(chosen: Score, X, Y, index, be: Backend, sample: int, seed: int):
    n, m, d = X.shape[0], Y.shape[0], X.shape[1]
    q = min(sample, n) + min(sample, m)
    flops = 2.0 * d * (min(sample, n) * m + min(sample, m) * n)
    with Work("sampled retrieval", q, flops, be) as work:
        prepared = _prepared_in_place(chosen, X, Y)
        return sampled_ranks(prepared, index, sample, seed, be, work.advance)


def _ranked(store: Store, chosen: Score, captions: str, options: dict, be: Backend) -> Ranked:
    """The ranks from the sidecar cache, or computed (and cached) from the float32 rows,
    which are let go before the summaries."""
    sample, seed, groups = options["sample"], options["seed"], options["groups"]
    params = rank_params(chosen, captions, sample, seed)
    cached = load_ranks(store, params) if groups is None else None
    X, Y, index = store_pairs(
        store, captions=captions, what="retrieval", dtype=np.float32, rows_only=cached is not None
    )
    _check(store, chosen, options["by_category"], sample, groups)
    if cached is not None:
        return Ranked(*cached, index, cached=True)
    if sample is None:
        i2t, t2i = _exact(chosen, X, Y, index, be)
        img_rows, cap_rows = np.arange(X.shape[0]), np.arange(Y.shape[0])
    else:
        i2t, img_rows, t2i, cap_rows = _sampled(chosen, X, Y, index, be, int(sample), seed)
    _save_ranks(store, params, i2t, t2i, img_rows, cap_rows)
    return Ranked(i2t, t2i, img_rows, cap_rows, index, cached=False)


def recall(summary: dict) -> Recall:
    """A `summarise_ranks` (or `with_interval`) result as its report type."""
    parts = {"r1": summary["R@1"], "r5": summary["R@5"], "r10": summary["R@10"]}
    rest = {k: v for k, v in summary.items() if not k.startswith("R@")}
    return Recall.build(**parts, **rest)


def _summaries(ranked: Ranked, sample: int | None, seed: int) -> tuple[Estimate, Recall, Recall]:
    """(the estimate's header, i2t recall, t2i recall): exact, or with bootstrap intervals."""
    if sample is None:
        n = ranked.image_rows.size + ranked.caption_rows.size
        estimate = Estimate.build(**exact_info(n))
        return estimate, recall(summarise_ranks(ranked.i2t)), recall(summarise_ranks(ranked.t2i))
    rng = np.random.default_rng(seed + 1)
    n_img, n_cap = ranked.image_rows.size, ranked.caption_rows.size
    estimate = Estimate.build(
        **sampled_info(n_img + n_cap, seed, "queries"),
        n_image_queries=int(n_img),
        n_text_queries=int(n_cap),
    )
    i2t, t2i = with_interval(ranked.i2t, rng), with_interval(ranked.t2i, rng)
    return estimate, recall(i2t), recall(t2i)


def _by_category(store: Store, ranked: Ranked) -> list[RetrievalCategory]:
    """Recall of each category's and supercategory's queries against the whole gallery."""
    index = ranked.index
    return [
        RetrievalCategory(
            name=name,
            kind=kind,
            n_images=int(mask.sum()),
            n_texts=int(mask[index].sum()),
            i2t=recall(summarise_ranks(ranked.i2t.subset(mask[ranked.image_rows]))),
            t2i=recall(summarise_ranks(ranked.t2i.subset(mask[index[ranked.caption_rows]]))),
        )
        for name, kind, mask in category_groups(
            store.primary_category, store.category_names, store.supercategory_of
        )
    ]


def retrieval_report(
    store: Store,
    *,
    by_category: bool = False,
    captions: str = "all",
    groups: Callable[[Ranks, Ranks, np.ndarray], GroupsReport] | None = None,
    score: str | None = None,
    backend: Backend | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> RetrievalReport:
    """The `mgap retrieval` report; `by_category` adds recall per primary category and
    supercategory (queries of that group, ranked against the whole gallery); `groups(i2t,
    t2i, caption index)` adds the `groups` entry from the same ranks (`--groups`). `score`
    defaults to the store's geometry: cosine, or negative geodesic distance on Lorentz stores.

    Exact by default; `sample=N` ranks N seeded queries per direction against the whole
    gallery and adds 95 % bootstrap intervals. Embeddings stay float32 and cosine rows are
    normalised in place: peak memory is the float32 embeddings plus one score block."""
    chosen = store_score(store, score)
    be = backend or resolve_backend("cpu")
    options = {"sample": sample, "seed": seed, "groups": groups, "by_category": by_category}
    ranked = _ranked(store, chosen, captions, options, be)
    estimate, i2t, t2i = _summaries(ranked, sample, seed)
    optional: dict[str, Any] = {"cached": True} if ranked.cached else {}
    if by_category:
        optional["by_category"] = _by_category(store, ranked)
    if groups is not None:
        optional["groups"] = groups(ranked.i2t, ranked.t2i, ranked.index)
    return RetrievalReport.build(
        **store_header(store),
        **chosen.describe(),
        captions=captions,
        n_images=int(store.n_images),
        n_texts=int(ranked.index.size),
        ties="broken at random, in expectation",
        compute=Compute.build(**be.describe()),
        estimate=estimate,
        i2t=i2t,
        t2i=t2i,
        **optional,
    )
