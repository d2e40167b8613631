"""What the metadata probe (`store/probe.py`) adds to opening a store.

Every command opens a store it did not write only after a child process has walked the
file's HDF5 metadata (a damaged file can make HDF5 loop forever). This script writes a
store shaped like COCO val2017 by default (5,000 images, 25,000 captions, d=512), then
times `Store(path)` with a fresh probe (forked, as in the CLI; and through
`python -m mgap.store.probe`, as in the multi-threaded TUI) against the same open with
the verdict already known (no probe): the baseline is the open as it was before.

    python benchmarks/bench_probe.py [--images 5000] [--captions 5] [--dim 512] [--repeats 7]

Both sides: median of `--repeats` runs (benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

import numpy as np
from _harness import measure, report

from mgap.store import probe
from mgap.store.build import store_from_arrays
from mgap.store.reader import Store


def write_store(path: Path, n: int, per_image: int, dim: int) -> Path:
    rng = np.random.default_rng(0)
    m = n * per_image
    return store_from_arrays(
        path,
        image_embeddings=rng.normal(size=(n, dim)).astype(np.float32),
        text_embeddings=rng.normal(size=(m, dim)).astype(np.float32),
        image_ids=[f"{i:012d}" for i in range(n)],
        captions=[f"a photo of thing {k} standing next to another thing" for k in range(m)],
        caption_image_row=np.repeat(np.arange(n), per_image),
        dtype="float16",
    )


def open_probed(path: Path) -> int:
    probe._verdicts.clear()
    return Store(path).n_texts


def open_known(path: Path) -> int:
    probe.trust(path)
    return Store(path).n_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--captions", type=int, default=5, help="captions per image")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_store(Path(tmp) / "s.h5", args.images, args.captions, args.dim)
        size = path.stat().st_size / 1e6
        print(f"store: {args.images} images, {args.images * args.captions} captions, {size:.0f} MB")
        ours = measure(lambda: open_probed(path), repeats=args.repeats, warmup=1)
        known = measure(lambda: open_known(path), repeats=args.repeats, warmup=1)
        report("open with a forked probe", ours, known, "open without probe")
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)  # a second thread: the probe runs python -m
        other.start()
        try:
            threaded = measure(lambda: open_probed(path), repeats=args.repeats, warmup=1)
        finally:
            stop.set()
            other.join()
        report("open with a python -m probe", threaded, known, "open without probe")
        for label, timing in (("forked", ours), ("python -m", threaded)):
            added = (timing.median - known.median) * 1000
            print(f"added by the {label} probe: {added:.0f} ms")


if __name__ == "__main__":
    main()
