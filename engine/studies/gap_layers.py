"""`mgap gap --layers`: the modality gap of every stored layer (docs/design.md §7).

Image layer k is paired with text layer k. Each layer is read in float32 on its own, its
gap metrics taken in O((n + m)·d) (`measures.gap.gap_metrics`), its rows normalised in
place for R@1 (`measures.retrieval`, `measures.retrieval_sample`) and let go before the
next layer is read: peak memory is one layer's float32 vectors plus one score block.
R@1 is exact, or sampled on the CPU above the exact-retrieval threshold of the
interactive views (`retrieval.INTERACTIVE_EXACT_CELLS`), with its bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.gap import first_caption_rows, gap_metrics
from mgap.engine.measures.retrieval import Ranks, retrieval_ranks, summarise_ranks, with_interval
from mgap.engine.measures.retrieval_sample import sampled_ranks
from mgap.engine.measures.rows import unit_rows_
from mgap.engine.measures.sampling import exact_info, sampled_info
from mgap.engine.measures.scores import Prepared, Score
from mgap.engine.reports.analysis import Compute, Estimate
from mgap.engine.reports.depth import DepthGapReport, DepthGapRow
from mgap.engine.studies.pairs import store_header, store_pairs
from mgap.engine.studies.retrieval import INTERACTIVE_EXACT_CELLS, INTERACTIVE_SAMPLE
from mgap.engine.studies.work import Work
from mgap.store import Store
from mgap.store.layers import SPACES, LayerSet

SIDES = ("image", "text")


@dataclass(frozen=True)
class DepthRequest:
    """What `mgap gap --layers` was asked: the space (None: lens when stored, else raw),
    the captions, and R@1's queries per direction (None: by the threshold; `exact`)."""

    space: str | None = None
    captions: str = "all"
    sample: int | None = None
    exact: bool = False
    seed: int = 0


def layer_space(store: Store, space: str | None) -> tuple[str, dict[str, LayerSet]]:
    """(the space to read, the layer set of each side), or a one-line refusal: no layers,
    a space one side lacks, a layer one side lacks, raw widths that differ."""
    if space not in (None, *SPACES):
        raise UsageError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
    sets = store.layer_sets
    if not sets:
        raise UsageError(
            f"{store.path.name} has no per-layer states, so --layers has nothing to show",
            hint="extract with `mgap extract ... --layers all`",
        )
    missing = [side for side in SIDES if side not in sets]
    if missing:
        raise UsageError(
            f"{store.path.name} has per-layer states of one tower only (no {missing[0]} layers)",
            hint="gap metrics need image and text layers; extract both towers with --layers",
        )
    chosen = space or ("lens" if all("lens" in sets[s].spaces for s in SIDES) else "raw")
    for side in SIDES:
        if chosen not in sets[side].spaces:
            raise UsageError(
                f"{store.path.name} has no {chosen!r} {side} layers "
                f"(stored: {', '.join(sets[side].spaces)})",
                hint="pick --space " + " or ".join(sets[side].spaces),
            )
    _check_pairing(store, sets, chosen)
    return chosen, sets


def _check_pairing(store: Store, sets: dict[str, LayerSet], space: str) -> None:
    image, text = sets["image"], sets["text"]
    lonely = sorted(set(image.layers) ^ set(text.layers))
    if lonely:
        side = "image" if lonely[0] in image.layers else "text"
        raise UsageError(
            f"{store.path.name}: layer {lonely[0]} is stored for the {side} side only, "
            "so it has no partner for the gap",
            hint="extract both towers with the same --layers list",
        )
    widths = (image.widths[space], text.widths[space])
    if widths[0] != widths[1]:
        raise UsageError(
            f"{store.path.name}: raw image layers are {widths[0]}-wide and raw text layers "
            f"{widths[1]}-wide; the raw spaces differ, so the gap between them is undefined",
            hint="use --space lens (each layer through its tower's head, in the joint space)",
        )


def query_sample(n: int, m: int, be: Backend, request: DepthRequest) -> int | None:
    """Queries per direction for R@1, or None for exact: sampled on the CPU above
    INTERACTIVE_EXACT_CELLS (image, caption) pairs, as the interactive views sample."""
    if request.exact:
        return None
    if request.sample is None and be.device == "cpu" and n * m > INTERACTIVE_EXACT_CELLS:
        return INTERACTIVE_SAMPLE
    return request.sample


def _ranks(X, Y, index, be: Backend, sample: int | None, seed: int, advance) -> tuple[Ranks, Ranks]:
    """(i2t, t2i) ranks on unit rows normalised in place (no copy of a side)."""
    prepared = Prepared(Score(), unit_rows_(X), unit_rows_(Y))
    if sample is None:
        return retrieval_ranks(X, Y, index, backend=be, progress=advance, prepared=prepared)
    i2t, _, t2i, _ = sampled_ranks(prepared, index, sample, seed, be, advance)
    return i2t, t2i


def _recall_at_1(i2t: Ranks, t2i: Ranks, sample: int | None, seed: int) -> dict:
    """R@1 per direction, with intervals when sampled (equal to `mgap retrieval`'s)."""
    if sample is None:
        return {
            "i2t_r1": summarise_ranks(i2t, (1,))["R@1"],
            "t2i_r1": summarise_ranks(t2i, (1,))["R@1"],
        }
    rng = np.random.default_rng(seed + 1)  # the draws of `mgap retrieval --sample`
    i2t_doc, t2i_doc = with_interval(i2t, rng), with_interval(t2i, rng)
    return {
        "i2t_r1": i2t_doc["R@1"],
        "t2i_r1": t2i_doc["R@1"],
        "i2t_r1_interval": i2t_doc["interval"]["R@1"],
        "t2i_r1_interval": t2i_doc["interval"]["R@1"],
    }


def _row(layer: int, X, Y, index, be: Backend, sample, seed: int, advance) -> DepthGapRow:
    """One layer's row; X and Y are normalised in place by the retrieval step."""
    metrics = gap_metrics(X, Y, index, top_k=0)
    i2t, t2i = _ranks(X, Y, index, be, sample, seed, advance)
    keep = ("dim", "l2m", "l2i", "mean_paired_cosine", "intra_image_cosine", "intra_text_cosine")
    return DepthGapRow.build(
        layer=int(layer),
        **{k: metrics[k] for k in keep},
        rmg=metrics["rmg"],
        **_recall_at_1(i2t, t2i, sample, seed),
    )


def _estimate(n: int, m: int, sample: int | None, seed: int) -> Estimate:
    if sample is None:
        return Estimate.build(**exact_info(n + m))
    n_img, n_cap = min(sample, n), min(sample, m)
    return Estimate.build(
        **sampled_info(n_img + n_cap, seed, "queries"),
        n_image_queries=int(n_img),
        n_text_queries=int(n_cap),
    )


def _work(layers: int, n: int, m: int, d: int, sample: int | None, be: Backend) -> Work:
    """Progress over every layer's retrieval (its quadratic part), in query units."""
    if sample is None:
        units, flops = n, 2.0 * n * m * d
    else:
        units = min(sample, n) + min(sample, m)
        flops = 2.0 * d * (min(sample, n) * m + min(sample, m) * n)
    return Work("gap across depth", layers * units, layers * flops, be)


def gap_layers_report(
    store: Store, request: DepthRequest | None = None, *, backend: Backend | None = None
) -> DepthGapReport:
    """One row per stored layer, shallow to deep, one layer in memory at a time."""
    request = request or DepthRequest()
    be = backend or resolve_backend("cpu")
    _, _, index = store_pairs(store, captions=request.captions, rows_only=True)
    space, sets = layer_space(store, request.space)
    positions = None
    if request.captions == "first":
        positions = first_caption_rows(store.text_image_index)
    n, m, layers = store.n_images, int(index.size), sets["image"].layers
    sample = query_sample(n, m, be, request)
    rows = []
    with _work(len(layers), n, m, sets["image"].widths[space], sample, be) as work:
        for layer in layers:
            X = store.layer_embeddings("image", layer, space, np.float32)
            Y = store.layer_embeddings("text", layer, space, np.float32, positions)
            rows.append(_row(layer, X, Y, index, be, sample, request.seed, work.advance))
            del X, Y
    return DepthGapReport.build(
        **store_header(store),
        space=space,
        pooling={side: sets[side].pooling for side in SIDES},
        lens={side: sets[side].lens for side in SIDES},
        captions=request.captions,
        n_images=int(n),
        n_texts=m,
        retrieval=_estimate(n, m, sample, request.seed),
        compute=Compute.build(**be.describe()),
        layers=rows,
    )
