"""Metrics as functions of per-image sums, so subgroups and bootstrap replicates are cheap.

Every metric mgap reports per group is a function of weighted sums over images: L2M of
Σwᵢx̂ᵢ and Σwᵢ(sum of image i's caption ŷ), the intra cosines of those sums and of Σwᵢ‖x̂ᵢ‖²,
recall of Σwᵢ·hitᵢ, zero-shot accuracy of Σwᵢ·correctᵢ. A weight vector w is a group's
mask (0/1) or a bootstrap replicate (how often each image was drawn), so one matrix
product W @ columns gives every metric for many replicates at once, with no n × n matrix
and no copy of a side per replicate. Captions follow their image: the bootstrap resamples
images (the unit groups are defined on) and keeps each image's captions with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mgap.engine.measures.gap import RMG_FLOOR, paired_cosines
from mgap.engine.measures.retrieval import Ranks
from mgap.engine.measures.rows import unit_rows
from mgap.engine.measures.scores import Score

Finish = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]

#: cells of the weight matrix per bootstrap chunk (float64: 5M cells = 40 MB)
WEIGHT_CELLS = 5_000_000


@dataclass
class Additive:
    """Per-image columns ((n,) or (n, k)) and the metrics they give once summed with weights."""

    columns: dict[str, np.ndarray]
    finish: Finish

    @property
    def n(self) -> int:
        return int(next(iter(self.columns.values())).shape[0])

    def take(self, mask: np.ndarray) -> Additive:
        return Additive({k: v[mask] for k, v in self.columns.items()}, self.finish)

    def evaluate(self, W: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics per row of W (B, n): each row weights the images."""
        sums = {k: W @ v for k, v in self.columns.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.finish(sums)

    def point(self) -> dict[str, float | None]:
        """Metrics with every image weighted once."""
        values = self.evaluate(np.ones((1, self.n)))
        return {k: _float(v[0]) for k, v in values.items()}


def _float(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def merge(parts: Mapping[str, Additive], rename: Mapping[str, str]) -> Additive:
    """One Additive from several (columns namespaced by part); `rename` maps
    "part/metric" to the merged metric name and keeps only those."""
    columns = {f"{p}/{k}": v for p, a in parts.items() for k, v in a.columns.items()}

    def finish(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for p, a in parts.items():
            sub = {k.split("/", 1)[1]: v for k, v in sums.items() if k.startswith(p + "/")}
            for metric, value in a.finish(sub).items():
                name = rename.get(f"{p}/{metric}")
                if name is not None:
                    out[name] = value
        return out

    return Additive(columns, finish)


# ---- gap ---------------------------------------------------------------------------------
def _rmg(mean_cos: np.ndarray, intra_image: np.ndarray, intra_text: np.ndarray) -> np.ndarray:
    m = (1.0 - mean_cos) / 2.0
    m = np.where(m > 0, m, RMG_FLOOR)
    return m / (m + ((1.0 - intra_image) / 2.0 + (1.0 - intra_text) / 2.0) / 2.0)


def _gap_finish(s: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    n, m = s["one"], s["captions"]
    delta = s["x"] / n[:, None] - s["y"] / m[:, None]
    sum_x2 = np.einsum("bd,bd->b", s["x"], s["x"])
    sum_y2 = np.einsum("bd,bd->b", s["y"], s["y"])
    intra_image = (sum_x2 - s["x_sq"]) / (n * (n - 1))
    intra_text = (sum_y2 - s["y_sq"]) / (m * (m - 1))
    mean_cos = s["cos"] / m
    return {
        "n_images": n,
        "n_texts": m,
        "l2m": np.sqrt(np.einsum("bd,bd->b", delta, delta)),
        "l2i": s["dist"] / m,
        "mean_paired_cosine": mean_cos,
        "intra_image_cosine": intra_image,
        "intra_text_cosine": intra_text,
        "rmg": _rmg(mean_cos, intra_image, intra_text),
    }


def gap_additive(X: np.ndarray, Y: np.ndarray, index: np.ndarray) -> Additive:
    """The §7 gap metrics (L2M, L2I, paired and intra cosines, RMG) as per-image sums."""
    Xn, Yn = unit_rows(X), unit_rows(Y)
    n = Xn.shape[0]
    cos = paired_cosines(Xn, Yn, index)
    sq_x = np.einsum("ij,ij->i", Xn, Xn)
    sq_y = np.einsum("ij,ij->i", Yn, Yn)
    dist = np.sqrt(np.maximum(sq_x[index] + sq_y - 2.0 * cos, 0.0))
    y_sum = np.zeros_like(Xn)
    np.add.at(y_sum, index, Yn)

    def per_image(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=values, minlength=n)

    columns = {
        "one": np.ones(n),
        "captions": np.bincount(index, minlength=n).astype(np.float64),
        "x": Xn,
        "y": y_sum,
        "x_sq": sq_x,
        "y_sq": per_image(sq_y),
        "cos": per_image(cos),
        "dist": per_image(dist),
    }
    return Additive(columns, _gap_finish)


# ---- retrieval ---------------------------------------------------------------------------
def retrieval_additive(
    i2t: Ranks, t2i: Ranks, index: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> Additive:
    """R@k and mean rank in both directions; a caption query belongs to its image."""
    n = i2t.valid.size
    valid = i2t.valid.astype(np.float64)
    columns: dict[str, np.ndarray] = {"i2t_n": valid, "t2i_n": np.bincount(index, minlength=n)}
    columns["t2i_n"] = columns["t2i_n"].astype(np.float64)

    def spread(values: np.ndarray) -> np.ndarray:  # valid image queries back to all rows
        out = np.zeros(n)
        out[i2t.valid] = values
        return out

    for k in ks:
        columns[f"i2t_R@{k}"] = spread(i2t.hit_probability(k))
        columns[f"t2i_R@{k}"] = np.bincount(index, weights=t2i.hit_probability(k), minlength=n)
    columns["i2t_rank"] = spread(i2t.expected_rank())
    columns["t2i_rank"] = np.bincount(index, weights=t2i.expected_rank(), minlength=n)

    def finish(s: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for side in ("i2t", "t2i"):
            for k in ks:
                out[f"{side}.R@{k}"] = s[f"{side}_R@{k}"] / s[f"{side}_n"]
            out[f"{side}.mean_rank"] = s[f"{side}_rank"] / s[f"{side}_n"]
            out[f"{side}.n"] = s[f"{side}_n"]
        return out

    return Additive(columns, finish)


# ---- zero-shot ---------------------------------------------------------------------------
def zeroshot_additive(
    X: np.ndarray, class_embeddings: np.ndarray, truth: np.ndarray, score: Score | None = None
) -> Additive:
    """Top-1/top-5 accuracy and mean per-class accuracy; `truth` is (n, classes) multi-hot,
    an image counts as correct when a predicted class is any of its labels. `score` defaults
    to the cosine (Lorentz stores pass theirs, see scores.py)."""
    truth = np.asarray(truth, dtype=bool)
    scores = (score or Score()).matrix(X, class_embeddings)
    k5 = min(5, scores.shape[1])
    top5 = np.argpartition(-scores, k5 - 1, axis=1)[:, :k5]
    top1 = np.argmax(scores, axis=1)
    rows = np.arange(X.shape[0])
    labelled = truth.any(axis=1)
    correct1 = truth[rows, top1]
    correct5 = truth[rows[:, None], top5].any(axis=1)
    columns = {
        "n": labelled.astype(np.float64),
        "top1": correct1.astype(np.float64),
        "top5": correct5.astype(np.float64),
        "class_n": truth.astype(np.float64),
        "class_correct": (truth & correct1[:, None]).astype(np.float64),
    }

    def finish(s: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        per_class = s["class_correct"] / s["class_n"]
        return {
            "accuracy": s["top1"] / s["n"],
            "top5_accuracy": s["top5"] / s["n"],
            "mean_class_accuracy": np.nanmean(np.where(s["class_n"] > 0, per_class, np.nan), 1)
            if per_class.shape[1]
            else np.full(per_class.shape[0], np.nan),
            "n": s["n"],
        }

    return Additive(columns, finish)


def cosine_additive(X: np.ndarray, X_ref: np.ndarray) -> Additive:
    """Mean cosine between each image's embedding and its reference (clean) embedding."""
    cos = np.einsum("ij,ij->i", unit_rows(X), unit_rows(X_ref))
    columns = {"one": np.ones(X.shape[0]), "cos": cos}
    return Additive(columns, lambda s: {"cosine": s["cos"] / s["one"]})


# ---- bootstrap ---------------------------------------------------------------------------
def bootstrap_weights(n: int, replicates: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of a (replicates, n) matrix of draw counts: n images drawn with replacement."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(replicates, WEIGHT_CELLS // max(n, 1)))
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_ci(
    additive: Additive, replicates: int, seed: int, level: float = 0.95
) -> dict[str, list[float | None]]:
    """Percentile intervals of every metric over bootstrap replicates of the images."""
    if replicates < 1 or additive.n < 2:
        return {}
    parts: dict[str, list[np.ndarray]] = {}
    for W in bootstrap_weights(additive.n, replicates, seed):
        for key, values in additive.evaluate(W).items():
            parts.setdefault(key, []).append(values)
    tail = (1.0 - level) / 2.0 * 100.0
    out: dict[str, list[float | None]] = {}
    for key, chunks in parts.items():
        values = np.concatenate(chunks)
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = np.percentile(values, [tail, 100.0 - tail])
            out[key] = [float(lo), float(hi)]
        else:
            out[key] = [None, None]
    return out
