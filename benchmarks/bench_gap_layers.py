"""`mgap gap --layers` (issue 23): 13 layers against one, time and peak RSS.

    python benchmarks/bench_gap_layers.py --store-dir /work/bigstore [--n 40000] [--layers 13]

Builds the COCO-train-shaped store (`scale_store.py`; `--n` images, 5 captions each,
d = 512) and two copies with lens layers: `--layers` of them and one. Each command runs
as a user would, in its own process on the CPU, with its wall time and peak RSS:

- `mgap gap S` (plain, its defaults: separability and top dims; sidecar cache removed first);
- `mgap gap S1 --layers` on the one-layer copy: the single-layer time of the same work;
- `mgap gap S13 --layers` on the 13-layer copy.

Targets: the 13-layer time <= 13x the single-layer time, and peak RSS <= 1.5x one layer's
float32 embeddings ((n + m)·d·4 bytes). Above 2e9 (image, caption) pairs R@1 is sampled
(5,000 queries per direction), as at the full COCO-train shape.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scale_store import DIM, N_IMAGES, PER_IMAGE, add_layers, build_store  # noqa: E402


def _run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS GB) of one command in its own process; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024**2


def _gap(store: Path, *extra: str) -> tuple[float, float]:
    Path(f"{store}.cache.h5").unlink(missing_ok=True)  # plain `mgap gap` caches its document
    argv = [sys.executable, "-m", "mgap", "gap", str(store), "--device", "cpu", *extra, "--json"]
    return _run(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-dir", type=Path, default=Path("bigstore"))
    parser.add_argument("--n", type=int, default=N_IMAGES, help="images (5 captions each)")
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command (best)")
    args = parser.parse_args()
    base = build_store(args.store_dir, args.n)
    many, one = add_layers(base, args.layers), add_layers(base, 1)
    layer_gb = args.n * (1 + PER_IMAGE) * DIM * 4 / 1024**3
    print(
        f"== n = {args.n} images x {args.n * PER_IMAGE} captions, d = {DIM}, cpus "
        f"{os.cpu_count()}, load {os.getloadavg()[0]:.1f}; one layer's float32 embeddings "
        f"{layer_gb:.2f} GB, target peak RSS <= {1.5 * layer_gb:.2f} GB",
        flush=True,
    )
    runs = {
        "mgap gap (plain)": lambda: _gap(base),
        "mgap gap --layers, 1 layer": lambda: _gap(one, "--layers"),
        f"mgap gap --layers, {args.layers} layers": lambda: _gap(many, "--layers"),
    }
    best = {}
    for label, run in runs.items():
        got = [run() for _ in range(args.repeats)]
        best[label] = (min(s for s, _ in got), max(gb for _, gb in got))
        seconds, gb = best[label]
        print(
            f"{label:<32} {seconds:8.1f} s  peak RSS {gb:.2f} GB ({gb / layer_gb:.2f}x)",
            flush=True,
        )
    (plain, _), (single, _), (deep, deep_gb) = best.values()
    print(
        f"{args.layers} layers / 1 layer = {deep / single:.2f}x (target <= {args.layers}x); "
        f"/ plain mgap gap = {deep / plain:.2f}x; peak RSS {deep_gb / layer_gb:.2f}x one "
        "layer's embeddings (target <= 1.5x)"
    )


if __name__ == "__main__":
    main()
