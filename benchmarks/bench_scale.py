"""Analysis at dataset scale (issue 11): every target printed beside its baseline or floor.

    python benchmarks/bench_scale.py --store-dir /work/bigstore          # everything
    python benchmarks/bench_scale.py --only kernels                      # n = 5,000, d = 768
    python benchmarks/bench_scale.py --only store --commands gap,neighbours

Part 1 (`kernels`, n = 5,000, d = 768): mutual k-NN / CKNNA and RBF CKA against the float32
products they cannot avoid (their floor), and RBF CKA against mgap's previous full-matrix
float64 code; all timed through `_harness` in this process.

Part 2 (`store`): builds the COCO-train-shaped store with `mgap import` (118,287 images,
591,435 captions, d = 512; see scale_store.py) and, for `zeroshot`, a copy with class
prompt embeddings; runs each command as a user would, in its own process, and prints wall
time and peak RSS against 1.5x the float32 embeddings.
Exact retrieval is compared with the float32 products of the same total size on a slice of
the images (the full product takes minutes on 2 cores; the ratio is what the target is), and
`--sample` retrieval with the products of its own queries against the whole gallery.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import measure, report  # noqa: E402
from scale_store import build_prompt_store, build_store  # noqa: E402

from mgap.engine.compute.backend import resolve_backend  # noqa: E402
from mgap.engine.measures import cka  # noqa: E402
from mgap.engine.measures.knn import graph_cknna, graph_mutual, knn_graph  # noqa: E402
from mgap.engine.measures.rbf_blocked import rbf_cka_matrix  # noqa: E402

#: what mgap measured with the code before issue 11, on this store and machine (shared,
#: loaded): `/usr/bin/time -f "%e s %M KB" mgap CMD STORE --json`
BEFORE = {
    "gap": "60.0 s, 5.92 GB",
    "gap --by-category": "not finished after 15 min (issue report)",
    "retrieval": "not finished after 15 min (issue report)",
    "neighbours": "45.8 s, 7.23 GB",
    "zeroshot {prompts}": "4.2 s, 1.15 GB (a float64 copy of the image side)",
}


def _pair(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    Y = np.tanh(X @ rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d))
    return X, (Y + 0.5 * rng.standard_normal((n, d), dtype=np.float32)).astype(np.float32)


def kernels(n: int = 5000, d: int = 768, repeats: int = 3) -> None:
    X, Y = _pair(n, d)
    be = resolve_backend("cpu")
    print(f"== n = {n}, d = {d}, {be.describe()}")

    def products():  # the n x n float32 products both k-NN graphs need
        return [(A / np.linalg.norm(A, axis=1, keepdims=True)) @ A.T for A in (X, Y)]

    def knn_both():
        (ia, sa), (ib, sb) = knn_graph(X, 10, backend=be), knn_graph(Y, 10, backend=be)
        return graph_mutual(ia, ib), graph_cknna(ia, sa, ib, sb)

    report(
        "mutual k-NN + CKNNA (k=10) vs its n x n products",
        measure(knn_both, repeats),
        measure(products, repeats),
        "floor",
    )

    def kernel_floor():  # both RBF kernels as the seed's kernel_CKA builds them, in float32:
        out = []  # products, σ² = the median nonzero squared distance, exp
        for A in (X, Y):
            Ac = A - A.mean(0)
            sq = np.einsum("ij,ij->i", Ac, Ac)
            D = Ac @ Ac.T
            D *= -2.0
            D += sq[:, None]
            D += sq[None, :]
            np.exp(D * (-0.5 / float(np.median(D[D != 0]))), out=D)
            out.append(D)
        return out

    ours = measure(lambda: rbf_cka_matrix([X, Y], backend=be)[0][0][1], repeats)
    report(
        "RBF CKA exact blocked vs building both kernels",
        ours,
        measure(kernel_floor, repeats),
        "floor",
    )
    before = measure(lambda: cka.rbf_cka(X, Y), repeats)
    report("RBF CKA exact blocked vs mgap's full float64 kernels", ours, before, "before")
    print(f"  values: blocked {ours.value:.6f} · full float64 {before.value:.6f}", flush=True)


def _run(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS GB, exit code) of one command in its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024**2, proc.returncode


def _tiled_product(be, A: np.ndarray, B: np.ndarray) -> None:
    """A @ B.T in float32, tile by tile into one reused buffer: the floor every exact or
    sampled retrieval pays (each score must be computed once)."""
    tile_rows, tile_cols = be.tile_shape(A.shape[0], B.shape[0])
    flat = np.empty(tile_rows * tile_cols, np.float32)
    for lo in range(0, A.shape[0], tile_rows):
        hi = min(lo + tile_rows, A.shape[0])
        for c0 in range(0, B.shape[0], tile_cols):
            c1 = min(c0 + tile_cols, B.shape[0])
            np.matmul(A[lo:hi], B[c0:c1].T, out=flat[: (hi - lo) * (c1 - c0)].reshape(hi - lo, -1))


def retrieval_floors(store: Path, rows: int = 4096, sample: int = 20_000, repeats: int = 1) -> None:
    """Exact retrieval on `rows` images against every caption, and `--sample` retrieval,
    each against the float32 products of the same size (the product is the floor)."""
    from mgap.engine.measures.retrieval import retrieval_ranks
    from mgap.engine.measures.retrieval_sample import _query_rows, sampled_ranks
    from mgap.engine.measures.rows import unit_rows_
    from mgap.engine.measures.scores import Prepared, Score
    from mgap.engine.studies.pairs import store_pairs
    from mgap.store import open_store

    X, Y, index = store_pairs(open_store(store), what="retrieval", dtype=np.float32)
    Xn, Yn = unit_rows_(X), unit_rows_(Y)
    be = resolve_backend("cpu")
    d = Xn.shape[1]
    # rows >= the store's images: the whole store; else captions of images outside the
    # slice count as the slice's images' (index mod rows): the same products and counting,
    # with more right captions per image than a real store has
    rows = min(rows, len(Xn))
    Xs, slice_index = Xn[:rows], index % rows
    sliced = Prepared(Score(), Xs, Yn)  # already unit rows: no copies
    ours = measure(
        lambda: retrieval_ranks(Xs, Yn, slice_index, backend=be, prepared=sliced), repeats
    )
    floor = measure(lambda: _tiled_product(be, Xs, Yn), repeats)
    _print_floor(
        f"exact retrieval, {rows} images x {len(Yn)} captions",
        ours,
        floor,
        2.0 * rows * len(Yn) * d,
        "target <= 1.3x",
    )

    # the same query rows as `sampled_ranks` draws (seed 0)
    rng = np.random.default_rng(0)
    img_q = _query_rows(len(Xn), sample, rng, np.bincount(index, minlength=len(Xn)) > 0)
    cap_q = _query_rows(len(Yn), sample, rng, np.ones(len(Yn), dtype=bool))
    prepared = Prepared(Score(), Xn, Yn)
    ours = measure(lambda: sampled_ranks(prepared, index, sample, 0, be), repeats)

    def products():
        _tiled_product(be, Xn[img_q], Yn)
        _tiled_product(be, Yn[cap_q], Xn)

    floor = measure(products, repeats)
    flops = 2.0 * d * (img_q.size * len(Yn) + cap_q.size * len(Xn))
    _print_floor(f"retrieval --sample {sample}", ours, floor, flops, "target <= 30 s")


def _print_floor(label: str, ours, floor, flops: float, target: str) -> None:
    ratio = report(f"{label} vs its float32 products", ours, floor, "product")
    print(
        f"  {label} / product = {1 / ratio:.2f}x ({target}); the product runs at "
        f"{flops / floor.median / 1e9:.0f} GFLOP/s, {flops:.3g} flops",
        flush=True,
    )


def store_part(folder: Path, commands: list[str]) -> None:
    store = build_store(folder)
    emb_gb = (118_287 + 591_435) * 512 * 4 / 1024**3
    print(
        f"== {store}: float32 embeddings {emb_gb:.2f} GB, target peak RSS <= {1.5 * emb_gb:.2f} GB"
    )
    prompts = build_prompt_store(folder) if "{prompts}" in " ".join(commands) else None
    for command in commands:
        words = [
            w.replace("{store}", str(store)).replace("{prompts}", str(prompts))
            for w in command.split()
        ]
        if "{store}" not in command and "{prompts}" not in command:
            words.append(str(store))
        argv = [sys.executable, "-m", "mgap", *words, "--json"]
        seconds, gb, code = _run(argv)
        print(
            f"mgap {command}: {seconds:.1f} s, peak RSS {gb:.2f} GB "
            f"({gb / emb_gb:.2f}x embeddings) exit {code} · before: {BEFORE.get(command, '-')}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-dir", type=Path, default=Path("bigstore"))
    parser.add_argument("--only", choices=["kernels", "store"], default=None)
    parser.add_argument(
        "--floor-rows",
        type=int,
        default=4096,
        help="images in the exact-retrieval slice (0: the whole store, minutes per run)",
    )
    parser.add_argument(
        "--sample", type=int, default=20_000, help="queries per direction in the sampled run"
    )
    parser.add_argument(
        "--commands",
        default=",".join(
            [
                "gap",
                "gap --by-category",
                "retrieval --sample 20000",
                "neighbours",
                "zeroshot {prompts}",
                "knn {store}:image {store}:text --sample 5000",
                "plot {store} --no-cache",
                "cka {store}:image {store}:text",
                "cka {store}:image {store}:text --sample 20000",
                "cka {store}:image {store}:text --kernel rbf --sample 20000",
            ]
        ),
        help="comma-separated mgap commands run on the big store ({store} marks where the "
        "store goes, else it is appended; {prompts} is its copy with class prompts)",
    )
    args = parser.parse_args()
    print("note: timings on a shared 2-core machine (other sessions' load); no GPU here")
    if args.only in (None, "kernels"):
        kernels()
    if args.only in (None, "store"):
        commands = [c.strip() for c in args.commands.split(",") if c.strip()]
        store_part(args.store_dir, commands)
        rows = args.floor_rows or 10**9
        retrieval_floors(build_store(args.store_dir), rows, args.sample)


if __name__ == "__main__":
    main()
