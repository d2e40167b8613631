"""`mgap compare` over a zoo of stores, cold (no sidecar caches) and cached.

    python benchmarks/bench_compare.py [--stores 100] [--n 5000] [--captions 5] [--d 64]
        [--dir /tmp/mgap-bench-compare]

The stores are made with `mgap import` (run in this process, one call per store) from
seeded .npy files: n images, n·captions captions, every store on the same image ids, so
the rows come from the gap and retrieval studies and their sidecar caches. The command is
timed as users run it, `python -m mgap compare ... --json` in a subprocess: "cold" first
removes every store's sidecar cache, "cached" runs straight after it (every row from the
cached path, `engine/studies/compare_cache.py`: no store is opened). Wall and CPU seconds
are printed with the load average. Targets (issue 24): ≤ 60 s cold, ≤ 3 s cached for 100
stores of 5,000 images and 25,000 captions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from _harness import measure_interleaved

from mgap.cli import app
from mgap.store.naming import cache_path


def make_zoo(folder: Path, stores: int, n: int, captions: int, d: int) -> list[Path]:
    """`mgap import` of `stores` seeded stores on one set of image ids (kept if present)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids, rows = folder / "ids.txt", folder / "rows.txt"
    ids.write_text("\n".join(f"img{i}" for i in range(n)) + "\n")
    rows.write_text("\n".join(str(i // captions) for i in range(n * captions)) + "\n")
    paths = []
    for s in range(stores):
        out = folder / f"zoo{s:03d}.h5"
        paths.append(out)
        if out.exists():
            continue
        rng = np.random.default_rng(s)
        Z = rng.normal(size=(n, d)).astype(np.float32)
        noise = 0.2 + 1.5 * s / max(stores - 1, 1)
        X = Z + noise * rng.normal(size=(n, d)).astype(np.float32)
        Y = np.repeat(Z, captions, axis=0) + noise * rng.normal(size=(n * captions, d)).astype(
            np.float32
        )
        np.save(folder / "img.npy", X)
        np.save(folder / "txt.npy", Y + 0.3 * noise)
        args = ["import", "--image", str(folder / "img.npy"), "--text", str(folder / "txt.npy")]
        args += ["--ids", str(ids), "--caption-image-row", str(rows), "--name", "zoo"]
        app([*args, "--out", str(out)], standalone_mode=False)
    return paths


def run_compare(paths: list[Path]) -> dict:
    """The JSON document, with the CPU seconds (user + sys) of the command as `_cpu_s`: on
    a loaded machine the wall time says more about the load than about mgap."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "mgap", "compare", *map(str, paths), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**json.loads(done.stdout), "_cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--captions", type=int, default=5)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mgap-bench-compare"))
    args = parser.parse_args()
    paths = make_zoo(args.dir, args.stores, args.n, args.captions, args.d)

    def cold() -> dict:
        for path in paths:
            cache_path(path).unlink(missing_ok=True)
        return run_compare(paths)

    cold_t, cached_t = measure_interleaved([cold, lambda: run_compare(paths)], repeats=1)
    assert not any(r["cached"] for r in cold_t.value["rows"])
    assert all(r["cached"] for r in cached_t.value["rows"])
    strip = [{k: v for k, v in r.items() if k != "cached"} for r in cold_t.value["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "cached"} for r in cached_t.value["rows"]]
    print(
        f"mgap compare, {args.stores} stores x {args.n} images x {args.n * args.captions} "
        f"captions (d = {args.d}, shared ids {cold_t.value['shared_ids']}): "
        f"cold {cold_t.median:.1f} s (target <= 60 s; CPU {cold_t.value['_cpu_s']:.1f} s), "
        f"cached {cached_t.median:.2f} s (target <= 3 s; CPU {cached_t.value['_cpu_s']:.2f} s), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )


if __name__ == "__main__":
    main()
