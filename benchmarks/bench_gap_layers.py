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


def _run(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS GB) of one command in its own process; it must
    succeed. CPU seconds (user + system) are what a loaded, shared machine distorts least."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, usage.ru_maxrss / 1024**2


def _gap(store: Path, *extra: str) -> tuple[float, float, float]:
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
        best[label] = tuple(
            f(values) for f, values in zip((min, min, max), zip(*got, strict=True), strict=True)
        )
        wall, cpu, gb = best[label]
        print(
            f"{label:<32} {wall:8.1f} s wall {cpu:8.1f} s CPU  peak RSS {gb:.2f} GB "
            f"({gb / layer_gb:.2f}x)",
            flush=True,
        )
    plain, single, deep = best.values()
    for i, what in ((0, "wall"), (1, "CPU")):
        print(
            f"{what}: {args.layers} layers / 1 layer = {deep[i] / single[i]:.2f}x "
            f"(target <= {args.layers}x); / plain mgap gap = {deep[i] / plain[i]:.2f}x"
        )
    print(f"peak RSS {deep[2] / layer_gb:.2f}x one layer's float32 embeddings (target <= 1.5x)")


if __name__ == "__main__":
    main()
