"""The reductions that consume a score block on the device (docs/design.md §10).

`Backend` inherits these (torch reaches them only through `Backend.torch_module`): threshold counts for retrieval, top-k for k-NN, category distance
sums, and the RBF kernel passes. Each reads a block that `Backend.products` or `tiles` made
and returns per-row or per-column totals, so a score block never leaves the device. On
numpy the counting and top-k passes are the fused numba kernels of `tile_kernels`
(imported on first use: numba compiles them); on torch they are tensor operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mgap.engine.measures.rows import row_norms


class Reductions:
    """The block reductions of `Backend` (which supplies `engine`, `put`, `host`, `products`,
    `tiles` and the torch device `_dev`)."""

    engine: str
    _dev: Any
    put: Callable[[np.ndarray], Any]
    host: Callable[..., np.ndarray]
    products: Callable[..., Iterator[tuple[int, int, Any]]]
    tiles: Callable[..., Iterator[tuple[int, int, int, int, Any]]]
    torch_module: Callable[[], Any]

    # ---- reductions over one score block -----------------------------------------------
    def take(self, S: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """S[rows[i], cols[i]] for every i, as float32 on the host."""
        if self.engine == "numpy":
            return S[rows, cols]
        torch = self.torch_module()
        r = torch.from_numpy(np.ascontiguousarray(rows)).to(self._dev)
        c = torch.from_numpy(np.ascontiguousarray(cols)).to(self._dev)
        return S[r, c].cpu().numpy()

    def count_block(
        self,
        S: Any,
        col_low: np.ndarray,
        col_high: np.ndarray,
        row_low: np.ndarray,
        row_high: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per column: rows scoring above `col_high` and at least `col_low`; per row: columns
        scoring above `row_high` and at least `row_low` (float32 host thresholds, int64
        counts). On numpy one fused pass (`tile_kernels`)."""
        if self.engine == "numpy":
            from mgap.engine.compute.tile_kernels import tile_counts

            per_col, per_row = tile_counts(
                np.ascontiguousarray(S), *(_f32(v) for v in (col_low, col_high, row_low, row_high))
            )
            return per_col[0], per_col[1], per_row[0], per_row[1]
        torch = self.torch_module()
        c_low, c_high = (self.put(v[None, :]) for v in (col_low, col_high))
        r_low, r_high = (self.put(v[:, None]) for v in (row_low, row_high))
        counts = (
            torch.gt(S, c_high).sum(0),
            torch.ge(S, c_low).sum(0),
            torch.gt(S, r_high).sum(1),
            torch.ge(S, r_low).sum(1),
        )
        return tuple(t.cpu().numpy().astype(np.int64) for t in counts)  # type: ignore[return-value]

    def count_rows(
        self, S: Any, row_low: np.ndarray, row_high: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row: columns scoring above `row_high` and at least `row_low` (int64)."""
        if self.engine == "numpy":
            from mgap.engine.compute.tile_kernels import row_counts

            per_row = row_counts(np.ascontiguousarray(S), _f32(row_low), _f32(row_high))
            return per_row[0], per_row[1]
        torch = self.torch_module()
        r_low, r_high = (self.put(v[:, None]) for v in (row_low, row_high))
        above, atleast = torch.gt(S, r_high).sum(1), torch.ge(S, r_low).sum(1)
        return above.cpu().numpy().astype(np.int64), atleast.cpu().numpy().astype(np.int64)

    def unit_distance_tiles(
        self, X: np.ndarray, Y: np.ndarray, rows: int | None = None
    ) -> Iterator[tuple[int, int, int, int, Any]]:
        """(lo, hi, c0, c1, ‖x̂ᵢ − ŷⱼ‖ for images lo..hi and captions c0..c1) from raw rows:
        the float32 products are scaled by inverse norms, so no normalised copy of a side
        is made. Zero rows stay zero vectors (distance ‖ŷ‖ to the others)."""
        inv_x, unit_x = _inverse_norms(X)
        inv_y, unit_y = _inverse_norms(Y)
        a, b = self.put(X), self.put(Y)
        inv_y_d, unit_y_d = self.put(inv_y[None, :]), self.put(unit_y[None, :])
        for lo, hi, c0, c1, D in self.tiles(a, b, rows):
            D *= self.put(inv_x[lo:hi, None])
            D *= inv_y_d[:, c0:c1]
            D *= -2.0
            D += self.put(unit_x[lo:hi, None])
            D += unit_y_d[:, c0:c1]
            if self.engine == "numpy":
                np.maximum(D, 0.0, out=D)
                np.sqrt(D, out=D)
            else:
                D.clamp_(min=0.0).sqrt_()
            yield lo, hi, c0, c1, D

    def distance_sums(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        x_group: np.ndarray,
        y_group: np.ndarray,
        groups: tuple[int, int],
        rows: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Σ ‖x̂ᵢ − ŷⱼ‖ over images i of group a and captions j of group b: a float64
        (groups[0], groups[1]) table. Group ids < 0 are left out."""
        y_hot = self.put(one_hot(y_group, groups[1], np.float32))
        sums = np.zeros(groups)
        for lo, hi, c0, c1, D in self.unit_distance_tiles(X, Y, rows):
            per_row = self.host(D @ y_hot[c0:c1])
            sums += one_hot(x_group[lo:hi], groups[0]).T @ per_row
            if progress is not None and c1 == len(Y):
                progress(hi - lo)
        return sums

    def topk(
        self,
        U: np.ndarray,
        k: int,
        rows: int | None = None,
        queries: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar rows of U to each row (self excluded), or to each row listed
        in `queries`: (indices sorted by index, similarities in float64), each (q, k)."""
        n = U.shape[0]
        own = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
        a = self.put(U)
        q = a if queries is None else self.put(U[own])
        idx = np.empty((own.size, k), dtype=np.int64)
        sim = np.empty((own.size, k))
        for lo, hi, S in self.products(q, a, rows):
            if self.engine == "numpy":
                from mgap.engine.compute.tile_kernels import top_k

                idx[lo:hi], sim[lo:hi] = top_k(np.ascontiguousarray(S), k, own[lo:hi])
            else:
                torch = self.torch_module()
                r = torch.arange(hi - lo, device=S.device)
                S[r, torch.from_numpy(own[lo:hi]).to(S.device)] = -float("inf")
                top = torch.topk(S, k, dim=1).indices.sort(dim=1).values
                idx[lo:hi] = top.cpu().numpy()
                sim[lo:hi] = torch.gather(S, 1, top).cpu().numpy()
        return idx, sim

    # ---- RBF kernels -------------------------------------------------------------------
    def distance_blocks(self, X: np.ndarray) -> Iterator[tuple[int, int, Any]]:
        """Squared distances (lo, hi, D²[lo:hi]) of centred rows, clipped at 0, exact zero
        diagonal; blocks sized to `block_cells`."""
        Xc = np.asarray(X, dtype=np.float64)
        Xc = (Xc - Xc.mean(axis=0)).astype(np.float32)
        sq = np.einsum("ij,ij->i", Xc, Xc)
        a, sq_dev = self.put(Xc), self.put(sq[None, :])
        for lo, hi, D in self.products(a, a):
            D *= -2.0
            D += self.put(sq[lo:hi, None])
            D += sq_dev
            if self.engine == "numpy":
                np.maximum(D, 0.0, out=D)
                D[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
            else:
                D.clamp_(min=0.0)
                r = self.torch_module().arange(hi - lo, device=D.device)
                D[r, r + lo] = 0.0
            yield lo, hi, D

    def upper_values(self, D: Any, lo: int, hi: int) -> Any:
        """The strict upper triangle of rows lo..hi of an n x n block (flattened)."""
        if self.engine == "numpy":
            cols = np.arange(D.shape[1])
            return D[cols[None, :] > np.arange(lo, hi)[:, None]]
        torch = self.torch_module()
        cols = torch.arange(D.shape[1], device=D.device)
        return D[cols[None, :] > torch.arange(lo, hi, device=D.device)[:, None]]

    def to_numpy_values(self, v: Any) -> np.ndarray:
        return self.host(v, np.float32)

    def rbf_(self, D: Any, sigma: float) -> Any:
        """D² -> exp(−D²/(2σ²)) in place."""
        D *= -0.5 / sigma**2
        if self.engine == "numpy":
            return np.exp(D, out=D)
        return D.exp_()

    def block_stats(self, K: Any, L: Any) -> tuple[float, np.ndarray]:
        """(⟨K, L⟩ over the block, row sums of K) in float64."""
        if self.engine == "numpy":
            return float(np.einsum("ij,ij->", K, L, dtype=np.float64)), K.sum(1, dtype=np.float64)
        torch = self.torch_module()
        return float((K.double() * L.double()).sum()), K.sum(1, dtype=torch.float64).cpu().numpy()


def one_hot(groups: np.ndarray, n_groups: int, dtype: type = np.float64) -> np.ndarray:
    """(rows, n_groups) indicator; ids < 0 give an all-zero row."""
    groups = np.asarray(groups, dtype=np.int64)
    hot = np.zeros((groups.size, n_groups), dtype=dtype)
    keep = groups >= 0
    hot[np.flatnonzero(keep), groups[keep]] = 1.0
    return hot


def _inverse_norms(X: np.ndarray, block: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """(1/‖xᵢ‖, 1 or 0 for a zero row) in float32, norms taken in float64 block by block."""
    inv = np.empty(X.shape[0], dtype=np.float32)
    for lo in range(0, X.shape[0], block):
        norms = row_norms(X[lo : lo + block].astype(np.float64))
        inv[lo : lo + block] = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return inv, (inv > 0).astype(np.float32)


def _f32(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v, dtype=np.float32)
