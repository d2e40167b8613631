"""The compute backend for every quadratic kernel: numpy on the CPU, torch on CUDA.

Analysis modules never import torch themselves. They hand float32 matrices to a `Backend`,
which runs the blocked similarity products *and* the reductions that consume them
(retrieval counting, top-k, category distance sums, RBF kernel sums), so a score block
never leaves the device: only per-row or per-column totals come back, accumulated in
float64. Torch is imported only when a CUDA (or explicit torch) backend is made, so
`mgap gap` and the TUI's first frame never pay for it.

Precision: products run in float32 everywhere by default. `fast=True` allows TF32 on CUDA
and says so in `describe()`; on the CPU there is no faster mode and precision stays float32.
The torch path on the CPU (`engine="torch"`) exists so that tests pin it against numpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgap.core.errors import UsageError

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, or cuda[:i]."
#: float32 score cells per block: 25M (100 MB) on the CPU, 256M (1 GB) on a GPU
CPU_BLOCK_CELLS = 25_000_000
GPU_BLOCK_CELLS = 256_000_000
#: rows of a 2-D score tile: a product needs enough rows to reuse each column it streams
#: (42 rows x 591k columns ran at a third of the speed of 2,048 x 12k on two cores); on the
#: CPU a tile has at most CPU_TILE_COLS columns, so its 32 MB are still in cache when counted
CPU_TILE_ROWS = 2048
CPU_TILE_COLS = 4096
GPU_TILE_ROWS = 16_384
#: measured float32 product throughput is cached per backend for cost estimates
_CALIBRATION: dict[str, float] = {}


def _nvidia_present() -> bool:
    """A cheap check for an NVIDIA driver, so `auto` on a CPU box never imports torch."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def _torch() -> Any:
    import torch

    return torch


@dataclass(frozen=True)
class Backend:
    """Where and how the heavy products run. Build one with `resolve_backend`."""

    device: str = "cpu"
    engine: str = "numpy"
    fast: bool = False
    _dev: Any = field(default=None, compare=False, repr=False)

    # ---- description -----------------------------------------------------------------
    @property
    def precision(self) -> str:
        return "tf32" if self.fast and self.device.startswith("cuda") else "float32"

    @property
    def block_cells(self) -> int:
        return GPU_BLOCK_CELLS if self.device.startswith("cuda") else CPU_BLOCK_CELLS

    def describe(self) -> dict:
        """The `device` entry every analysis JSON carries."""
        out = {"device": self.device, "engine": self.engine, "precision": self.precision}
        if self.fast and self.precision == "float32":
            out["note"] = "--fast has no effect on the CPU: products stay float32"
        return out

    def block_rows(self, n_columns: int) -> int:
        """Rows per block so that one block of scores stays near `block_cells`."""
        return max(1, self.block_cells // max(int(n_columns), 1))

    def tile_shape(self, n_rows: int, n_columns: int) -> tuple[int, int]:
        """(rows, columns) of a score tile: as many rows as make the product efficient, then
        as many columns as fit in `block_cells` on a GPU, or CPU_TILE_COLS on the CPU."""
        on_gpu = self.device.startswith("cuda")
        rows = max(1, min(int(n_rows), GPU_TILE_ROWS if on_gpu else CPU_TILE_ROWS))
        cols = self.block_cells // rows if on_gpu else CPU_TILE_COLS
        return rows, max(1, min(int(n_columns), cols))

    def flops_per_second(self) -> float:
        """float32 product throughput, measured once per backend on a small product."""
        key = f"{self.engine}:{self.device}:{self.precision}"
        if key not in _CALIBRATION:
            rng = np.random.default_rng(0)
            A = rng.standard_normal((512, 256), dtype=np.float32)
            B = rng.standard_normal((4096, 256), dtype=np.float32)
            a, b = self.put(A), self.put(B)
            self.synchronize(self.mm(a, b))  # warm-up
            start = time.perf_counter()
            for _ in range(3):
                out = self.mm(a, b)
            self.synchronize(out)
            elapsed = max(time.perf_counter() - start, 1e-6)
            _CALIBRATION[key] = 3 * 2.0 * A.shape[0] * B.shape[0] * A.shape[1] / elapsed
        return _CALIBRATION[key]

    def estimate_seconds(self, flops: float) -> float:
        return float(flops) / self.flops_per_second()

    # ---- moving data -----------------------------------------------------------------
    def put(self, A: np.ndarray) -> Any:
        """A float32 matrix on the backend's device (numpy: a float32 view or copy)."""
        A = np.ascontiguousarray(A, dtype=np.float32)
        if self.engine == "numpy":
            return A
        return _torch().from_numpy(A).to(self._dev)

    def host(self, a: Any, dtype: type = np.float64) -> np.ndarray:
        if self.engine == "numpy":
            return np.asarray(a, dtype=dtype)
        return a.detach().cpu().numpy().astype(dtype, copy=False)

    def synchronize(self, _a: Any = None) -> None:
        if self.engine == "torch" and self.device.startswith("cuda"):
            _torch().cuda.synchronize(self._dev)

    def mm(self, a: Any, b: Any) -> Any:
        """a @ b.T on the device (both already `put`)."""
        return a @ b.T

    def matmul(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """A @ B.T in float32 on the device, returned as a float64 host array (small outputs:
        Gram matrices, QAP kernels)."""
        return self.host(self.mm(self.put(A), self.put(B)))

    def products(
        self, a: Any, b: Any, rows: int | None = None, out_cols: int | None = None
    ) -> Iterator[tuple[int, int, Any]]:
        """(lo, hi, a[lo:hi] @ b.T) over row blocks; on numpy one buffer is reused."""
        n, m = int(a.shape[0]), int(b.shape[0])
        rows = self.block_rows(out_cols or m) if rows is None else max(int(rows), 1)
        buf = np.empty((min(rows, n), m), dtype=np.float32) if self.engine == "numpy" else None
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            if buf is not None:
                yield lo, hi, np.matmul(a[lo:hi], b.T, out=buf[: hi - lo])
            else:
                yield lo, hi, a[lo:hi] @ b.T

    def tiles(
        self, a: Any, b: Any, rows: int | None = None, cols: int | None = None
    ) -> Iterator[tuple[int, int, int, int, Any]]:
        """(lo, hi, c0, c1, a[lo:hi] @ b[c0:c1].T) over 2-D tiles, row block by row block;
        on numpy one buffer is reused."""
        n, m = int(a.shape[0]), int(b.shape[0])
        auto_rows, auto_cols = self.tile_shape(n, m)
        rows = auto_rows if rows is None else max(int(rows), 1)
        cols = min(m, max(1, auto_cols if cols is None else int(cols)))
        flat = np.empty(min(rows, n) * cols, dtype=np.float32) if self.engine == "numpy" else None
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            for c0 in range(0, m, cols):
                c1 = min(c0 + cols, m)
                if flat is not None:
                    out = flat[: (hi - lo) * (c1 - c0)].reshape(hi - lo, c1 - c0)
                    yield lo, hi, c0, c1, np.matmul(a[lo:hi], b[c0:c1].T, out=out)
                else:
                    yield lo, hi, c0, c1, a[lo:hi] @ b[c0:c1].T

    # ---- reductions over one score block -----------------------------------------------
    def take(self, S: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """S[rows[i], cols[i]] for every i, as float32 on the host."""
        if self.engine == "numpy":
            return S[rows, cols]
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
                torch = _torch()
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
                r = _torch().arange(hi - lo, device=D.device)
                D[r, r + lo] = 0.0
            yield lo, hi, D

    def upper_values(self, D: Any, lo: int, hi: int) -> Any:
        """The strict upper triangle of rows lo..hi of an n x n block (flattened)."""
        if self.engine == "numpy":
            cols = np.arange(D.shape[1])
            return D[cols[None, :] > np.arange(lo, hi)[:, None]]
        torch = _torch()
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
        torch = _torch()
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
        part = X[lo : lo + block].astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", part, part))
        inv[lo : lo + block] = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return inv, (inv > 0).astype(np.float32)


def _f32(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v, dtype=np.float32)


def cuda_available() -> bool:
    if not _nvidia_present():
        return False
    try:
        return bool(_torch().cuda.is_available())
    except ImportError:
        return False


def resolve_backend(
    device: str = "auto", *, fast: bool = False, engine: str | None = None
) -> Backend:
    """`--device auto|cpu|cuda[:i]` -> a Backend; a device that is not there is a usage error.

    `engine="torch"` with `device="cpu"` runs the torch kernels on the CPU (tests use it).
    """
    spec = (device or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if cuda_available() else "cpu"
    if spec == "cpu":
        chosen = engine or "numpy"
        if chosen not in ("numpy", "torch"):
            raise UsageError(f"unknown compute engine {chosen!r}", hint="use numpy or torch")
        dev = _torch().device("cpu") if chosen == "torch" else None
        return Backend("cpu", chosen, fast, dev)
    if spec == "cuda" or spec.startswith("cuda:"):
        index_text = spec.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise UsageError(f"--device {device!r} is not a device", hint=DEVICE_HELP)
        if not cuda_available():
            raise UsageError(
                f"--device {device} asked for CUDA but no CUDA device is available",
                hint="use --device cpu or auto",
            )
        torch = _torch()
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here",
                hint="pick cuda:0 .. cuda:N-1",
            )
        torch.backends.cuda.matmul.allow_tf32 = fast
        torch.backends.cudnn.allow_tf32 = fast
        return Backend(f"cuda:{index}", "torch", fast, torch.device(f"cuda:{index}"))
    raise UsageError(f"--device {device!r} is not a device", hint=DEVICE_HELP)
