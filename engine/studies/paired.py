"""`mgap compare A B --paired`: each metric's difference B − A on the images both stores
hold, with a paired bootstrap interval (docs/design.md §7).

One resample draws n of the n shared images with replacement; each drawn image brings its
captions (in each store, its own), and A and B are measured on that same draw. Every
metric is a ratio of per-image sums, so a draw is a weight vector w (how often each
image was drawn) and a metric is evaluated for a batch of draws by matrix products:

- L2M = ‖Σwᵢx̂ᵢ/Σwᵢ − Σwᵢsᵢ/Σwᵢmᵢ‖, sᵢ the sum of image i's unit captions, mᵢ their count;
- paired cosine = Σwᵢcᵢ / Σwᵢmᵢ, cᵢ the sum of x̂ᵢ·ŷⱼ over i's captions;
- intra cosines = (‖Σwᵢx̂ᵢ‖² − Σwᵢ‖x̂ᵢ‖²) / (N(N − 1)), the mean over pairs of distinct
  drawn rows (N = Σwᵢ; for captions Σwᵢsᵢ, Σwᵢmᵢ); RMG from these three;
- retrieval R@k: each query's hit probability against the whole shared gallery, the
  queries resampled (images for i2t, their captions for t2i);
- zero-shot top-1: each labelled image's top-1 hit, resampled.

The interval is the 2.5 and 97.5 percentiles of B − A over the draws: a store compared
with itself gives 0 with a zero-width interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.backend import Backend, resolve_backend
from mgap.engine.measures.gap import rmg
from mgap.engine.measures.retrieval import score_ranks
from mgap.engine.measures.rows import unit_rows
from mgap.engine.reports.compare import PairedBlock, PairedDifference
from mgap.engine.studies.compare import has_class_prompts, open_compared, shared_ids, subset_pairs
from mgap.engine.studies.scores import store_score
from mgap.engine.studies.zeroshot import zero_shot_inputs
from mgap.store import Store

METRICS = (
    "l2m",
    "rmg",
    "paired_cosine",
    "intra_image_cosine",
    "intra_text_cosine",
    "i2t_r1",
    "i2t_r5",
    "t2i_r1",
    "t2i_r5",
    "zeroshot_top1",
)
#: draws evaluated per batch (bounds the (batch, n) weights and (batch, d) sums)
BATCH = 100
DEFINITION = (
    "B - A on the shared images; 95% percentile interval over paired resamples of the "
    "images with their captions (retrieval: hit probabilities against the whole shared "
    "gallery, queries resampled)"
)


@dataclass
class ImageParts:
    """Per-image sums from which every metric of a draw follows (one store)."""

    x: np.ndarray  # (n, d) unit image rows
    s: np.ndarray  # (n, d) sum of the image's unit caption rows
    m: np.ndarray  # (n,) captions of the image
    x_sq: np.ndarray  # (n,) ‖x̂ᵢ‖² (1, or 0 for a zero row)
    s_sq: np.ndarray  # (n,) Σ ‖ŷⱼ‖² over its captions
    cos: np.ndarray  # (n,) Σ x̂ᵢ·ŷⱼ over its captions
    hits: dict[str, np.ndarray]  # "i2t_r1"... -> (n,) hits per image (t2i: summed)
    i2t_valid: np.ndarray  # (n,) 1 where the image has a caption
    zs_hit: np.ndarray | None  # (n,) top-1 hit per image (0 where unlabelled)
    zs_labelled: np.ndarray | None  # (n,) 1 where the image has a label


def _per_image(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(index, weights=values, minlength=n)


def _retrieval_hits(X, Y, index, store: Store, backend: Backend) -> tuple[dict, np.ndarray]:

    n = X.shape[0]
    i2t, t2i = score_ranks(X, Y, index, store_score(store), backend=backend)
    hits = {}
    for k in (1, 5):
        per_image = np.zeros(n)
        per_image[i2t.valid] = i2t.hit_probability(k)
        hits[f"i2t_r{k}"] = per_image
        per_caption = np.zeros(index.size)
        per_caption[t2i.valid] = t2i.hit_probability(k)
        hits[f"t2i_r{k}"] = _per_image(per_caption, index, n)
    return hits, i2t.valid.astype(np.float64)


def _zero_shot_hits(X: np.ndarray, store: Store, images: np.ndarray):
    if not has_class_prompts(store):
        return None, None

    _, classes, truth = zero_shot_inputs(store)
    truth = truth[images]
    predicted = np.argmax(store_score(store).matrix(X, classes), axis=1)
    labelled = truth.any(axis=1)
    hit = truth[np.arange(predicted.size), predicted] & labelled
    return hit.astype(np.float64), labelled.astype(np.float64)


def image_parts(store: Store, ids: list[str], backend: Backend) -> ImageParts:
    """The per-image sums of `store` on `ids` (in that order)."""
    images, captions, index = subset_pairs(store, ids)
    X = store.embedding_subset("image", images, np.float32)
    Y = store.embedding_subset("text", captions, np.float32)
    n = images.size
    hits, i2t_valid = _retrieval_hits(X, Y, index, store, backend)
    zs_hit, zs_labelled = _zero_shot_hits(X, store, images)
    x, y = unit_rows(X), unit_rows(Y)
    s = np.zeros_like(x)
    np.add.at(s, index, y)
    return ImageParts(
        x=x,
        s=s,
        m=np.bincount(index, minlength=n).astype(np.float64),
        x_sq=np.einsum("ij,ij->i", x, x),
        s_sq=_per_image(np.einsum("ij,ij->i", y, y), index, n),
        cos=_per_image(np.einsum("ij,ij->i", x[index], y), index, n),
        hits=hits,
        i2t_valid=i2t_valid,
        zs_hit=zs_hit,
        zs_labelled=zs_labelled,
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _intra(total: np.ndarray, squares: np.ndarray, count: np.ndarray) -> np.ndarray:
    return _ratio((total * total).sum(axis=1) - squares, count * (count - 1))


def draw_metrics(parts: ImageParts, W: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of the (draws, n) weights W."""

    N, M = W.sum(axis=1), W @ parts.m
    sx, sy = W @ parts.x, W @ parts.s
    out = {
        "l2m": np.linalg.norm(sx / N[:, None] - sy / M[:, None], axis=1),
        "paired_cosine": _ratio(W @ parts.cos, M),
        "intra_image_cosine": _intra(sx, W @ parts.x_sq, N),
        "intra_text_cosine": _intra(sy, W @ parts.s_sq, M),
    }
    out["rmg"] = np.array(
        [
            rmg(*values)
            for values in zip(
                out["paired_cosine"],
                out["intra_image_cosine"],
                out["intra_text_cosine"],
                strict=True,
            )
        ]
    )
    valid = W @ parts.i2t_valid
    for name, hits in parts.hits.items():
        out[name] = _ratio(W @ hits, valid if name.startswith("i2t") else M)
    if parts.zs_hit is not None:
        out["zeroshot_top1"] = _ratio(W @ parts.zs_hit, W @ parts.zs_labelled)
    return out


def _interval(values: np.ndarray) -> list[float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [None, None]
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def _value(array: np.ndarray) -> float | None:
    return float(array[0]) if np.isfinite(array[0]) else None


def paired_block(
    a: Store, b: Store, ids: list[str], *, boot: int = 1000, seed: int = 0, backend=None
) -> PairedBlock:
    """The `paired` part of `mgap compare A B --paired`."""
    if boot < 1:
        raise UsageError(f"--bootstrap must be at least 1, got {boot}")
    be: Backend = backend or resolve_backend("cpu")
    pa, pb = image_parts(a, ids, be), image_parts(b, ids, be)
    n = len(ids)
    ones = np.ones((1, n))
    obs_a, obs_b = draw_metrics(pa, ones), draw_metrics(pb, ones)
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[np.ndarray]] = {name: [] for name in obs_a if name in obs_b}
    for lo in range(0, boot, BATCH):
        draws = rng.integers(0, n, size=(min(BATCH, boot - lo), n))
        W = np.zeros(draws.shape)
        np.add.at(W, (np.arange(draws.shape[0])[:, None], draws), 1.0)
        ma, mb = draw_metrics(pa, W), draw_metrics(pb, W)
        for name in diffs:
            diffs[name].append(mb[name] - ma[name])
    differences = []
    for name in METRICS:
        in_a, in_b = name in obs_a, name in obs_b
        va = _value(obs_a[name]) if in_a else None
        vb = _value(obs_b[name]) if in_b else None
        both = name in diffs
        differences.append(
            PairedDifference.build(
                metric=name,
                a=va,
                b=vb,
                difference=None if va is None or vb is None else vb - va,
                interval=_interval(np.concatenate(diffs[name])) if both else [None, None],
            )
        )
    return PairedBlock.build(
        a=str(a.path),
        b=str(b.path),
        n_images=n,
        bootstrap=int(boot),
        seed=int(seed),
        definition=DEFINITION,
        differences=differences,
    )


def paired_report(
    paths: list[str], *, boot: int = 1000, seed: int = 0, backend=None
) -> PairedBlock:
    """`paired_block` for the two STOREs of `mgap compare A B --paired`, on their shared ids."""
    if len(paths) != 2:
        raise UsageError(f"--paired compares exactly two stores (A B), got {len(paths)}")
    a, b = open_compared(paths)
    common = shared_ids([a, b], allow_mixed=False)
    ids = [i for i in dict.fromkeys(a.image_ids.tolist()) if i in common]
    return paired_block(a, b, ids, boot=boot, seed=seed, backend=backend)
