"""`mgap examples`: the images (or captions) of a category that carry the gap, worst first.

Only the rows a report needs are read: the chosen queries, their true partners, and the
other side streamed block by block (one pass gives the retrieval counts, the top-k and
that side's centroid). Ranks come from `mgap retrieval`'s sidecar cache when it holds
these queries; otherwise they are counted for the chosen queries only, with the same
kernel and tie tolerance, and kept in the sidecar cache under those queries
(`examples_cache`), so a second report on them reads no gallery (docs/design.md §7, §10).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.measures import examples as ex
from mgap.engine.measures.categories import category_groups
from mgap.engine.measures.retrieval import TIE_TOL
from mgap.engine.measures.rows import unit_rows_
from mgap.engine.measures.scores import COSINE
from mgap.engine.reports.examples import Example, ExampleMatch, ExamplesReport
from mgap.engine.studies.examples_cache import load_scan, save_scan, scan_params
from mgap.engine.studies.pairs import store_header
from mgap.engine.studies.retrieval import INTERACTIVE_SAMPLE, load_ranks, rank_params
from mgap.engine.studies.scores import store_score
from mgap.store import Store

SORTS = ("pair", "rank", "centroid")
SIDES = ("image", "text")
ALL = "(all)"
#: gallery rows per block of the streamed pass
GALLERY_BLOCK = 65_536


@dataclass(frozen=True)
class Queries:
    """The candidate queries of one side, and their right partners in the other side."""

    side: str
    other: str
    rows: np.ndarray  # query rows in the store's order of that side
    owner: np.ndarray  # position in `rows` of each right pair
    right: np.ndarray  # gallery row of each right pair


def category_mask(store: Store, category: str | None) -> tuple[str | None, np.ndarray]:
    """(the group's name, image mask); a name that is no category nor supercategory is
    refused with the nearest names."""
    if category in (None, ALL):
        return None, np.ones(store.n_images, dtype=bool)
    groups = category_groups(store.primary_category, store.category_names, store.supercategory_of)
    masks = {name: mask for name, _, mask in groups}
    if category in masks:
        return category, masks[category]
    if not masks:
        raise UsageError(
            f"{store.path.name} has no category labels, so --category {category!r} matches none",
            hint="drop --category",
        )
    near = difflib.get_close_matches(category, list(masks), n=3) or sorted(masks)[:3]
    raise UsageError(
        f"no category {category!r} in {store.path.name}; nearest: {', '.join(near)}",
        hint="pass one of the names `mgap gap --by-category` lists",
    )


def _queries(store: Store, side: str, mask: np.ndarray) -> Queries:
    index = np.asarray(store.text_image_index, dtype=np.int64)
    if side == "image":
        rows = np.flatnonzero(mask & (np.bincount(index, minlength=store.n_images) > 0))
        caps = np.flatnonzero(np.isin(index, rows))
        return Queries("image", "text", rows, np.searchsorted(rows, index[caps]), caps)
    rows = np.flatnonzero(mask[index])
    return Queries("text", "image", rows, np.arange(rows.size), index[rows])


def _check_sides(store: Store, side: str) -> None:
    if side not in SIDES:
        raise UsageError(f"--side must be image or text, got {side!r}")
    if not (store.has_images and store.has_texts):
        kind = "text-only" if store.has_texts else "image-only"
        raise StoreError(
            f"examples need both image and text embeddings; {store.path.name} is a {kind} store",
            hint="extract with a two-tower model (CLIP, SigLIP, BLIP)",
        )
    if store_score(store).name != COSINE:
        raise StoreError(
            f"examples rank by cosine; {store.path.name} is a {store.geometry} store",
            hint="use `mgap retrieval` for its own score",
        )


def _unit(store: Store, side: str, rows: np.ndarray) -> np.ndarray:
    return unit_rows_(store.embedding_subset(side, rows, np.float32))


def _gallery(store: Store, side: str) -> Iterator[tuple[int, np.ndarray]]:
    n = store.n_images if side == "image" else store.n_texts
    for lo in range(0, n, GALLERY_BLOCK):
        yield lo, _unit(store, side, np.arange(lo, min(n, lo + GALLERY_BLOCK)))


def _cached_counts(store: Store, q: Queries) -> tuple[np.ndarray, ...] | None:
    """(above, tied, right_tied) of these queries from `mgap retrieval`'s cache, or None
    when no cached run (exact, or the TUI's sample) holds every one of them."""
    score = store_score(store)
    for sample in (None, INTERACTIVE_SAMPLE):
        got = load_ranks(store, rank_params(score, "all", sample, 0))
        if got is None:
            continue
        ranks = got[0] if q.side == "image" else got[1]
        have = got[2] if q.side == "image" else got[3]
        at = np.searchsorted(have, q.rows)
        if q.rows.size and (at.max() >= have.size or (have[at] != q.rows).any()):
            continue
        return ranks.above[at], ranks.tied[at], ranks.right_tied[at]
    return None


def _scan(
    store: Store, q: Queries, Q: np.ndarray, best: np.ndarray, k: int, fetch_k: int = 0
) -> tuple[ex.GalleryScan, bool]:
    """The scan of these queries with their top `k`: from the sidecar cache when it holds
    them (True), else one pass over the other side keeping the top max(k, fetch_k), cached
    so that the next report (the TUI's top-5 after its list) reads it back."""
    params = scan_params(q.side, q.rows, store_score(store).describe(), TIE_TOL)
    cached = load_scan(store, params, q.rows, k)
    if cached is not None:
        return cached, True
    blocks = _gallery(store, q.other)
    scan = ex.scan_gallery(Q, blocks, best, q.owner, q.right, k=max(k, fetch_k), tol=TIE_TOL)
    save_scan(store, params, q.rows, scan)
    return dataclasses.replace(
        scan, top_rows=scan.top_rows[:, :k], top_scores=scan.top_scores[:, :k]
    ), False


def expected_rank(above: np.ndarray, tied: np.ndarray, right_tied: np.ndarray) -> np.ndarray:
    """The rank `mgap retrieval` averages: ties broken at random, in expectation."""
    return above + 1.0 + tied / (right_tied + 1.0)


def _subset(q: Queries, pick: np.ndarray) -> tuple[Queries, np.ndarray]:
    """The queries at positions `pick` (in that order), and which right pairs they keep."""
    pos = np.full(q.rows.size, -1, dtype=np.int64)
    pos[pick] = np.arange(pick.size)
    keep = pos[q.owner] >= 0
    return Queries(q.side, q.other, q.rows[pick], pos[q.owner[keep]], q.right[keep]), keep


def _check_options(sort: str, k: int, n: int) -> None:
    if sort not in SORTS:
        raise UsageError(f"--sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if k < 0:
        raise UsageError(f"--k must be 0 or more, got {k}")
    if n < 1:
        raise UsageError(f"--worst/--best must be at least 1, got {n}")


@dataclass(frozen=True)
class Picked:
    """The chosen queries and every number the report shows about them."""

    q: Queries
    pairs: np.ndarray  # score of each kept right pair
    mean: np.ndarray
    counts: tuple[np.ndarray, np.ndarray, np.ndarray]
    distance: np.ndarray
    scan: ex.GalleryScan
    source: str


def _ranked_key(
    store: Store, q: Queries, Q: np.ndarray, best: np.ndarray, mean: np.ndarray, sort: str
) -> tuple[np.ndarray, tuple | None, str]:
    """(the sort key, worst first ascending; the candidates' counts if known; their source)."""
    counts, source = _cached_counts(store, q), "cached"
    key = mean
    if sort == "centroid" or (sort == "rank" and counts is None):
        full, hit = _scan(store, q, Q, best, 0)
        if counts is None:
            counts, source = (full.above, full.tied, full.right_tied), _source(hit)
        key = -ex.centroid_distance(Q, full.centroid) if sort == "centroid" else key
    if sort == "rank":
        key = -expected_rank(*counts)
    return key, counts, source


def _source(hit: bool) -> str:
    return "cached" if hit else "computed"


def pick_examples(
    store: Store,
    q: Queries,
    sort: str,
    n: int,
    worst: bool,
    k: int,
    with_centroid: bool = True,
    fetch_k: int = 0,
) -> tuple[Picked, int]:
    """The n worst (or best) queries by `sort`, with their retrieval scan; and how many
    candidates there were. Without `with_centroid`, k = 0 and cached ranks, the other side
    is not read at all (the centroid distance is then NaN). A pass over the other side for
    the chosen queries keeps their top `fetch_k` in the cache as well."""
    Q = _unit(store, q.side, q.rows)
    partners, inverse = np.unique(q.right, return_inverse=True)
    pairs = ex.pair_scores(Q, _unit(store, q.other, partners)[inverse], q.owner)
    best = ex.best_per_query(pairs, q.owner, q.rows.size)
    mean = ex.mean_per_query(pairs, q.owner, q.rows.size)
    key, counts, source = _ranked_key(store, q, Q, best, mean, sort)
    order = np.lexsort((q.rows, key if worst else -key))[:n]
    chosen, keep = _subset(q, order)
    if k or counts is None or with_centroid or sort == "centroid":
        scan, hit = _scan(store, chosen, Q[order], best[order], k, fetch_k)
    else:  # cached ranks and nothing else from the other side: no pass over it
        none = np.zeros((order.size, 0))
        scan, hit = ex.GalleryScan(*counts, none, none, np.full(Q.shape[1], np.nan)), True
    if counts is None:
        counts, source = (scan.above, scan.tied, scan.right_tied), _source(hit)
    else:
        counts = tuple(c[order] for c in counts)
    distance = ex.centroid_distance(Q[order], scan.centroid)
    picked = Picked(chosen, pairs[keep], mean[order], counts, distance, scan, source)
    return picked, q.rows.size


class _Labels:
    """What the report prints about a row of either side."""

    def __init__(self, store: Store) -> None:
        names = np.asarray([*store.category_names, None], dtype=object)
        self.category = names[np.asarray(store.primary_category, dtype=np.int64)]
        self.index = np.asarray(store.text_image_index, dtype=np.int64)
        self.ids, self.paths, self.captions = store.image_ids, store.image_paths, store.captions

    def image_category(self, side: str, row: int) -> str | None:
        image = row if side == "image" else int(self.index[row])
        return self.category[image]

    def label(self, side: str, row: int) -> str:
        return str(self.ids[row]) if side == "image" else str(self.captions[row])

    def is_pair(self, query_side: str, query: int, other: int) -> bool:
        if query_side == "image":
            return int(self.index[other]) == query
        return int(self.index[query]) == other

    def match(self, side: str, row: int, cosine: float, true: bool) -> ExampleMatch:
        row = int(row)
        return ExampleMatch.build(
            row=row,
            label=self.label(side, row),
            cosine=float(cosine),
            true=bool(true),
            category=self.image_category(side, row),
        )


def _example(labels: _Labels, p: Picked, i: int) -> Example:
    q = p.q
    row = int(q.rows[i])
    image = row if q.side == "image" else int(labels.index[row])
    mine = np.flatnonzero(q.owner == i)
    true = [labels.match(q.other, q.right[j], p.pairs[j], True) for j in mine]
    true.sort(key=lambda m: (-m.cosine, m.row))
    retrieved = [
        labels.match(q.other, r, s, labels.is_pair(q.side, row, int(r)))
        for r, s in zip(p.scan.top_rows[i], p.scan.top_scores[i], strict=True)
    ]
    above, tied, right_tied = (int(c[i]) for c in p.counts)
    path = str(labels.paths[image]) if len(labels.paths) else None
    return Example.build(
        row=row,
        id=str(labels.ids[image]) if q.side == "image" else str(row),
        path=path or None,
        text=None if q.side == "image" else str(labels.captions[row]),
        category=labels.category[image],
        pair_cosine=float(p.mean[i]),
        rank=float(expected_rank(above, tied, right_tied)),
        above=above,
        tied=tied,
        centroid_distance=None if np.isnan(p.distance[i]) else float(p.distance[i]),
        true=true,
        retrieved=retrieved,
    )


def examples_report(
    store: Store,
    *,
    category: str | None = None,
    sort: str = "pair",
    n: int = 10,
    worst: bool = True,
    side: str = "image",
    k: int = 5,
    only: Sequence[int] | None = None,
    with_centroid: bool = True,
    fetch_k: int = 0,
) -> ExamplesReport:
    """The `mgap examples --json` report: the `n` worst (or best) queries of `category` by
    `sort` (pair: lowest mean true-pair cosine; rank: worst rank of the best true partner;
    centroid: furthest from the other side's centroid), each with its `k` best retrieved.
    `only` keeps the candidates among these query rows (the TUI's selected image);
    `with_centroid=False` leaves the centroid distance out when nothing else needs a pass
    over the other side (the TUI's list, once ranks are cached); `fetch_k` keeps that many
    retrieved per query in the sidecar cache when a pass is made anyway (the TUI's top-5)."""
    _check_sides(store, side)
    _check_options(sort, k, n)
    name, mask = category_mask(store, category)
    q = _queries(store, side, mask)
    if only is not None:
        q, _ = _subset(q, np.flatnonzero(np.isin(q.rows, np.asarray(only, dtype=np.int64))))
    picked, n_candidates = pick_examples(store, q, sort, n, worst, k, with_centroid, fetch_k)
    labels = _Labels(store)
    return ExamplesReport.build(
        **store_header(store),
        side=side,
        category=name,
        sort=sort,
        order="worst" if worst else "best",
        k=int(k),
        n_candidates=int(n_candidates),
        ranks=picked.source,
        examples=[_example(labels, picked, i) for i in range(picked.q.rows.size)],
    )
