"""The compute backend for every quadratic kernel: numpy on the CPU, torch on CUDA.

Analysis modules never import torch themselves. They hand float32 matrices to a `Backend`,
which runs the blocked similarity products (here) *and* the reductions that consume them
(`reductions`: retrieval counting, top-k, category distance sums, RBF kernel sums), so a
score block never leaves the device: only per-row or per-column totals come back, accumulated in
float64. Torch is imported only when a CUDA (or explicit torch) backend is made, so
`mgap gap` and the TUI's first frame never pay for it.

Precision: products run in float32 everywhere by default. `fast=True` allows TF32 on CUDA
and says so in `describe()`; on the CPU there is no faster mode and precision stays float32.
The torch path on the CPU (`engine="torch"`) exists so that tests pin it against numpy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.compute.reductions import Reductions

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
class Backend(Reductions):
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

    def torch_module(self) -> Any:
        """torch, imported on first use (the reductions reach it through here)."""
        return _torch()

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
