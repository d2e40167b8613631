"""Modality-gap metrics on raw arrays (docs/design.md §7), in O((n + m)·d): no n×n matrix.

Rows are L2-normalised first (x̂ = x/‖x‖; an all-zero row stays zero). Every metric is
a mean over rows of a side or over the (image, caption) pairs given by
`text_image_index`, so several captions per image weigh each caption once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgap.engine.measures.rows import row_norms, unit_rows

#: RMG's floor for the paired distance m (official two-effects-one-trigger code)
RMG_FLOOR = 1e-3

#: rows per block when pairing captions with their images (bounds the temporary copy)
PAIR_BLOCK = 8192
#: rows normalised at a time in float64 by `gap_sums` (8192 x 512 x 8 B = 32 MB)
BLOCK = 8192


def check_pairs(X: np.ndarray, Y: np.ndarray, text_image_index: np.ndarray) -> np.ndarray:
    """Validate shapes and the caption -> image index; returns the index as int64."""
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError("image and text embeddings must be 2-D arrays (rows, dim)")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"image dim {X.shape[1]} != text dim {Y.shape[1]}: not one shared space")
    index = np.asarray(text_image_index, dtype=np.int64)
    if index.shape != (Y.shape[0],):
        raise ValueError(f"text_image_index has shape {index.shape}, expected ({Y.shape[0]},)")
    if index.size and (index.min() < 0 or index.max() >= X.shape[0]):
        raise ValueError("text_image_index points outside the image rows")
    return index


def first_caption_rows(text_image_index: np.ndarray) -> np.ndarray:
    """Caption rows that are the first caption of their image, in caption order."""
    _, first = np.unique(np.asarray(text_image_index), return_index=True)
    return np.sort(first)


def intra_cosine(Xn: np.ndarray) -> float:
    """Mean of x̂ᵢ·x̂ⱼ over i≠j from the sum of rows: (‖Σx̂‖² − Σ‖x̂ᵢ‖²) / (n(n−1))."""
    n = Xn.shape[0]
    if n < 2:
        return float("nan")
    total = Xn.sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", Xn, Xn)) / (n * (n - 1)))


def paired_cosines(Xn: np.ndarray, Yn: np.ndarray, text_image_index: np.ndarray) -> np.ndarray:
    """x̂_{image(j)}·ŷⱼ for every caption j, in blocks so no (m, d) copy of X is made."""
    out = np.empty(Yn.shape[0], dtype=np.float64)
    for start in range(0, Yn.shape[0], PAIR_BLOCK):
        stop = start + PAIR_BLOCK
        out[start:stop] = np.einsum("ij,ij->i", Xn[text_image_index[start:stop]], Yn[start:stop])
    return out


def rmg(mean_paired_cosine: float, intra_image: float, intra_text: float) -> float:
    """Relative modality gap, official formula: m / (m + (d_I + d_T)/2), m floored at 1e-3."""
    m = (1.0 - mean_paired_cosine) / 2.0
    if not m > 0:
        m = RMG_FLOOR
    d_image = (1.0 - intra_image) / 2.0
    d_text = (1.0 - intra_text) / 2.0
    return float(m / (m + (d_image + d_text) / 2.0))


def top_dims(delta: np.ndarray, k: int) -> list[dict]:
    """The k dims with the largest |Δ_d|, each with its share of L2M² and the running total."""
    squared = delta * delta
    total = float(squared.sum())
    order = np.argsort(-np.abs(delta), kind="stable")[: max(int(k), 0)]
    rows, running = [], 0.0
    for d in order:
        share = float(squared[d] / total) if total > 0 else 0.0
        running += share
        rows.append(
            {"dim": int(d), "delta": float(delta[d]), "share": share, "cumulative_share": running}
        )
    return rows


def gap_vector(Xn: np.ndarray, Yn: np.ndarray) -> np.ndarray:
    """Δ = mean x̂ − mean ŷ (both sides already normalised)."""
    return Xn.mean(axis=0) - Yn.mean(axis=0)


@dataclass
class GapSums:
    """Running totals per group, from which every §7 gap metric follows in O(d).

    Rows are normalised block by block in float64 and summed in float64, so a whole side
    is never copied: the inputs may be float32 (or float16) arrays as read from a store.
    """

    n_x: np.ndarray  # (G,) images
    n_y: np.ndarray  # (G,) captions (= pairs)
    sum_x: np.ndarray  # (G, d) Σ x̂
    sum_y: np.ndarray  # (G, d) Σ ŷ
    sq_x: np.ndarray  # (G,) Σ ‖x̂‖² (1 per non-zero row)
    sq_y: np.ndarray
    cos: np.ndarray  # (G,) Σ over pairs x̂·ŷ
    dist: np.ndarray  # (G,) Σ over pairs ‖x̂ − ŷ‖

    def merged(self, members: np.ndarray) -> GapSums:
        """One group holding the sum of the `members` groups (a supercategory)."""
        return GapSums(*(a[members].sum(axis=0, keepdims=True) for a in vars(self).values()))

    def metrics(self, g: int, dim: int, top_k: int) -> dict:
        n, m = int(self.n_x[g]), int(self.n_y[g])
        delta = self.sum_x[g] / n - self.sum_y[g] / m
        intra_image = _intra(self.sum_x[g], self.sq_x[g], n)
        intra_text = _intra(self.sum_y[g], self.sq_y[g], m)
        paired = (float(self.cos[g] / m), float(self.dist[g] / m))
        return metrics_dict((n, m, dim), delta, paired, (intra_image, intra_text), top_k)


def metrics_dict(
    sizes: tuple[int, int, int],
    delta: np.ndarray,
    paired: tuple[float, float],
    intra: tuple[float, float],
    top_k: int,
) -> dict:
    """The §7 metrics from their parts: (n images, n texts, dim), the gap vector, the mean
    paired (cosine, distance) and the (image, text) intra-modality cosines."""
    (n, m, dim), (mean_cos, l2i), (intra_image, intra_text) = sizes, paired, intra
    return {
        "n_images": int(n),
        "n_texts": int(m),
        "dim": int(dim),
        "l2m": float(np.linalg.norm(delta)),
        "l2i": float(l2i),
        "mean_paired_cosine": float(mean_cos),
        "intra_image_cosine": intra_image,
        "intra_text_cosine": intra_text,
        "rmg": rmg(mean_cos, intra_image, intra_text),
        "top_dims": top_dims(delta, top_k),
    }


def _intra(total: np.ndarray, squares: float, n: int) -> float:
    """Mean x̂ᵢ·x̂ⱼ over i≠j: (‖Σx̂‖² − Σ‖x̂ᵢ‖²) / (n(n−1))."""
    return float((total @ total - squares) / (n * (n - 1))) if n >= 2 else float("nan")


def group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Σ of rows per group id (ids < 0 dropped), as a sparse indicator product: O(rows·d)."""
    keep = groups >= 0
    if n_groups == 1:
        kept = values if keep.all() else values[keep]  # no copy when every row counts
        return kept.sum(axis=0, keepdims=True)
    import scipy.sparse as sp

    rows = np.flatnonzero(keep)
    hot = sp.csr_matrix(
        (np.ones(rows.size), (groups[keep], rows)), shape=(n_groups, values.shape[0])
    )
    return np.asarray(hot @ values)


def gap_sums(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    image_group: np.ndarray | None = None,
    n_groups: int = 1,
) -> GapSums:
    """Totals per group of images (`image_group`, -1 = none) and of their captions, in blocks
    of BLOCK rows; one group holding everything when `image_group` is None."""
    index = np.asarray(text_image_index, dtype=np.int64)
    group = (
        np.zeros(X.shape[0], dtype=np.int64)
        if image_group is None
        else np.asarray(image_group, dtype=np.int64)
    )
    d, G = X.shape[1], n_groups
    out = GapSums(
        np.bincount(group[group >= 0], minlength=G).astype(np.int64),
        np.zeros(G, np.int64),
        np.zeros((G, d)),
        np.zeros((G, d)),
        *(np.zeros(G) for _ in range(4)),
    )
    # 1/‖x‖ of every image (0 for a zero row), so captions' images are never re-normalised
    inv_x = np.zeros(X.shape[0])
    unit_x = np.zeros(X.shape[0])  # ‖x̂‖²
    for lo in range(0, X.shape[0], BLOCK):
        xn, g = np.array(X[lo : lo + BLOCK], dtype=np.float64), group[lo : lo + BLOCK]
        norms = row_norms(xn)
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        xn *= inv[:, None]
        sq = np.einsum("ij,ij->i", xn, xn)
        out.sum_x += group_sum(xn, g, G)
        out.sq_x += group_sum(sq[:, None], g, G)[:, 0]
        inv_x[lo : lo + BLOCK], unit_x[lo : lo + BLOCK] = inv, sq
    for lo in range(0, Y.shape[0], BLOCK):
        rows = index[lo : lo + BLOCK]
        yn, g = unit_rows(Y[lo : lo + BLOCK]), group[rows]
        # x̂·ŷ = (x·ŷ)/‖x‖: the image rows as stored, scaled after the dot product
        cos = np.einsum("ij,ij->i", X[rows].astype(np.float64), yn) * inv_x[rows]
        sq_x, sq_y = unit_x[rows], np.einsum("ij,ij->i", yn, yn)
        dist = np.sqrt(np.maximum(sq_x + sq_y - 2.0 * cos, 0.0))
        out.n_y += np.bincount(g[g >= 0], minlength=G)
        out.sum_y += group_sum(yn, g, G)
        per_row = group_sum(np.stack([sq_y, cos, dist], axis=1), g, G)
        out.sq_y += per_row[:, 0]
        out.cos += per_row[:, 1]
        out.dist += per_row[:, 2]
    return out


def gap_metrics(
    X: np.ndarray,
    Y: np.ndarray,
    text_image_index: np.ndarray,
    *,
    top_k: int = 10,
    separability: bool = False,
) -> dict:
    """Every §7 gap metric for images X (n, d) and captions Y (m, d), in O((n + m)·d) time
    and block-sized extra memory.

    `separability=True` adds the cross-validated linear separability of the two sides
    (sklearn, imported only then).
    """
    index = check_pairs(X, Y, text_image_index)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        raise ValueError("gap metrics need at least one image and one caption")
    out = gap_sums(X, Y, index).metrics(0, X.shape[1], top_k)
    if separability:
        from mgap.engine.measures.separability import modality_separability

        out["separability"] = modality_separability(X, Y)
    return out
