"""Modality-gap metrics on raw arrays (docs/design.md §7), in O((n + m)·d): no n×n matrix.

Rows are L2-normalised first (x̂ = x/‖x‖; an all-zero row stays zero). Every metric is
a mean over rows of a side or over the (image, caption) pairs given by
`text_image_index`, so several captions per image weigh each caption once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgap.core.errors import StoreError, UsageError
from mgap.engine.compute.backend import Backend
from mgap.store import Store
from mgap.store.schema import GEOMETRY_LORENTZ

#: RMG's floor for the paired distance m (official two-effects-one-trigger code)
RMG_FLOOR = 1e-3

#: "auto": unique class texts on classification stores, else captions; "captions": every row
TEXT_SIDES = ("auto", "captions")

#: rows per block when pairing captions with their images (bounds the temporary copy)
PAIR_BLOCK = 8192
#: rows normalised at a time in float64 by `gap_sums` (8192 x 512 x 8 B = 32 MB)
BLOCK = 8192


def normalize(X: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Unit rows in `dtype`; zero rows stay zero instead of becoming NaN."""
    X = np.asarray(X, dtype=dtype)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    return X / np.maximum(norms, np.finfo(dtype).tiny)


_TINY = np.finfo(np.float64).tiny


def _unit(X: np.ndarray) -> np.ndarray:
    """`normalize` in float64 with one temporary: the copy is divided in place."""
    out = np.array(X, dtype=np.float64)
    out /= np.maximum(np.sqrt(np.einsum("ij,ij->i", out, out)), _TINY)[:, None]
    return out


def normalize_rows_(X: np.ndarray) -> np.ndarray:
    """Unit rows in place (norms in float64, block by block); zero rows stay zero. For the
    float32 arrays read from a store, so that normalising never copies a side."""
    for lo in range(0, X.shape[0], BLOCK):
        part = X[lo : lo + BLOCK]
        norms = np.sqrt(np.einsum("ij,ij->i", part, part, dtype=np.float64))
        part /= np.where(norms > 0, norms, 1.0).astype(X.dtype)[:, None]
    return X


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
        mean_cos = float(self.cos[g] / m)
        return {
            "n_images": n,
            "n_texts": m,
            "dim": int(dim),
            "l2m": float(np.linalg.norm(delta)),
            "l2i": float(self.dist[g] / m),
            "mean_paired_cosine": mean_cos,
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
        norms = np.sqrt(np.einsum("ij,ij->i", xn, xn))
        inv = np.where(norms > 0, 1.0 / np.maximum(norms, _TINY), 0.0)
        xn *= inv[:, None]
        sq = np.einsum("ij,ij->i", xn, xn)
        out.sum_x += group_sum(xn, g, G)
        out.sq_x += group_sum(sq[:, None], g, G)[:, 0]
        inv_x[lo : lo + BLOCK], unit_x[lo : lo + BLOCK] = inv, sq
    for lo in range(0, Y.shape[0], BLOCK):
        rows = index[lo : lo + BLOCK]
        yn, g = _unit(Y[lo : lo + BLOCK]), group[rows]
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


def _class_layout(store: Store, captions: str, index: np.ndarray):
    """The classification layout of the analysed caption rows, or None (captioned data)."""
    if not store.category_names:
        return None
    from mgap.engine.studies.class_texts import classification_layout
    from mgap.engine.studies.pairs import first_caption_rows

    texts = store.captions
    if captions == "first":
        texts = texts[first_caption_rows(store.text_image_index)]
    return classification_layout(texts, index, store.primary_category)


def gap_report(
    store: Store,
    *,
    captions: str = "all",
    by_category: bool = False,
    top_k: int = 10,
    separability: bool = True,
    text_side: str = "auto",
    backend: Backend | None = None,
    sample: int | None = None,
    exact: bool = False,
    seed: int = 0,
) -> dict:
    """The `mgap gap --json` document: §6 keys at top level, plus the per-category results
    and, for Lorentz stores, the hyperbolic analysis. `text_side="captions"` keeps every
    caption row even on classification stores (one prompt copy per image).

    Embeddings are read in float32 (no float64 copy of a side); only the category
    mean-pairwise table is quadratic, and it runs on `backend`, exact or sampled.

    The document is kept in the store's sidecar cache (`gap_cache`), keyed by the store's
    content and these options; a repeated call answers from it without reading the
    embeddings. A `by_category` report also keeps its summary (the options without
    `by_category`) as soon as it has it, for the TUI's first numbers."""
    from mgap.engine.compute.backend import resolve_backend
    from mgap.engine.studies import gap_cache
    from mgap.engine.studies.pairs import store_header, store_pairs
    from mgap.engine.studies.work import phase

    lorentz = store.geometry == GEOMETRY_LORENTZ
    if lorentz and store.curvature == 0:
        raise StoreError(
            f"{store.path.name} is a Lorentz store without a curvature",
            hint="re-import it with `mgap import --geometry lorentz --curvature C`",
        )
    if text_side not in TEXT_SIDES:
        raise UsageError(f"--text-side must be one of {', '.join(TEXT_SIDES)}, got {text_side!r}")
    be = backend or resolve_backend("cpu")
    params = gap_cache.gap_params(
        captions=captions,
        by_category=by_category,
        top_k=top_k,
        separability=separability,
        text_side=text_side,
        sample=sample,
        exact=exact,
        seed=seed,
        compute=be.describe(),
        content=gap_cache.content_digest(store),
    )
    cached = gap_cache.load_gap(store, params)
    if cached is not None:
        return cached
    phase("reading the store")
    dtype = np.float64 if lorentz else np.float32
    X, Y, index = store_pairs(store, captions=captions, what="gap", dtype=dtype)
    if by_category and not store.category_names:
        raise StoreError(
            f"{store.path.name} has no category labels, so --by-category has nothing to split",
            hint="extract from a dataset with categories (COCO instances, image folders)",
        )
    phase("gap metrics")
    layout = _class_layout(store, captions, index) if text_side == "auto" else None
    if layout is None:
        metrics = gap_metrics(X, Y, index, top_k=top_k, separability=separability)
        text_side = {"text_side": "captions"}
    else:
        from mgap.engine.studies.class_texts import class_gap_metrics, class_texts

        metrics = class_gap_metrics(
            X,
            class_texts(Y, layout),
            layout.image_class,
            top_k=top_k,
            separability=separability,
        )
        text_side = {
            "text_side": "unique_class_texts",
            "n_text_rows": int(Y.shape[0]),
            "templates_per_class": layout.templates_per_class,
        }
    doc = {
        **store_header(store),
        "captions": captions,
        **text_side,
        **metrics,
        "compute": be.describe(),
    }
    if by_category and not lorentz:  # the summary a plain `mgap gap` gives, kept first
        gap_cache.save_gap(store, {**params, "by_category": False}, doc)
    if by_category:
        from mgap.engine.measures.pairwise_table import choose_sample, table_flops
        from mgap.engine.studies.categories import category_breakdown
        from mgap.engine.studies.work import Work

        n, m, d = X.shape[0], Y.shape[0], X.shape[1]
        flops = table_flops(n, m, d, choose_sample(n, m, be, sample, exact))
        with Work("category mean-pairwise table", n, flops, be) as work:
            doc.update(
                category_breakdown(
                    X,
                    Y,
                    index,
                    store.primary_category,
                    store.category_names,
                    store.supercategory_of,
                    top_k=top_k,
                    backend=be,
                    sample=sample,
                    exact=exact,
                    seed=seed,
                    progress=work.advance,
                )
            )
    if lorentz:
        from mgap.engine.studies.hyperbolic import hyperbolic_report

        doc["hyperbolic"] = hyperbolic_report(X, Y, index, abs(store.curvature), top_k=top_k)
    gap_cache.save_gap(store, params, doc)
    return doc
