"""TUI speed: first frame, key-to-update latency while a job writes, scatter redraw at 100k points.

    python benchmarks/bench_tui.py [--repeats 3] [--keys 40] [--points 100000]

1. Time to first frame (process start -> Textual's Ready event, 80×24, headless) of
   `mgap tui` as shipped, against its budget of 1 s (there is no peer TUI to compare with).
2. Key-to-update latency: arrow keys in the Results pane's category table until the
   category metrics show the new row, with a writer process appending blocks to a store
   in the same store directory (the Jobs and Stores panes poll it), against the same keys
   with no writer. Both runs must show the same sequence of metrics.
3. Scatter redraw at 100k points: the widget redrawing at a new size (a resize) against a
   repaint at an unchanged size (served from its cache); both give the same Text, which must
   equal `render_scatter`'s.
Every figure is the median of the same number of runs on both sides, with min and max
(benchmarks/_harness.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _harness import Timing, report

PROBE = textwrap.dedent(
    """
    import sys, time, hashlib
    from pathlib import Path
    from mgap.tui.app import MgapApp

    class Probe(MgapApp):
        def on_ready(self) -> None:
            ids = ",".join(str(w.id) for w in self.screen.walk_children())
            digest = hashlib.sha1(ids.encode()).hexdigest()
            print("READY", digest, time.process_time(), flush=True)
            self.exit()

    Probe(Path(sys.argv[1])).run(headless=True, size=(80, 24))
    """
)

WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from mgap.store.progress import write_progress
    from mgap.store.writer import StoreLayout, create_store
    path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    layout = StoreLayout([f"i{i}" for i in range(n)], [""] * n, [f"c{i}" for i in range(n)],
                         np.arange(n))
    writer = create_store(path, layout, {"model": "bench", "dataset": "synthetic",
                                         "split": "test"}, image_dim=d, text_dim=d)
    rng = np.random.default_rng(0)
    start = time.time()
    block = 256
    write_progress(path, pid=__import__("os").getpid(), status="running", n_images=n,
                   images_done=0, device="cpu", store=path)
    for lo in range(0, n, block):
        rows = min(block, n - lo)
        writer.write_images(lo, rng.normal(size=(rows, d)), np.ones(rows, dtype=np.uint8))
        writer.write_texts(lo, rng.normal(size=(rows, d)))
        done = lo + rows
        rate = done / (time.time() - start)
        write_progress(path, status="running", images_done=done, images_per_s=rate,
                       eta_s=(n - done) / rate)
        time.sleep(0.02)
    writer.finish()
    write_progress(path, status="complete", images_done=n)
    """
)


def first_frame(store_dir: Path) -> tuple[float, float, str]:
    """(wall seconds from spawn to Ready, the child's CPU seconds by then, screen digest)."""
    env = {**os.environ, "MGAP_CONFIG": str(store_dir / "none.toml")}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", PROBE, str(store_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in child.stdout:
        if line.startswith("READY"):
            seconds = time.perf_counter() - started
            break
    else:
        raise SystemExit(f"probe failed: {child.stderr.read()}")
    child.wait(timeout=60)
    _, digest, cpu = line.split()
    return seconds, float(cpu), digest


def results_store(path: Path, n: int = 4000, d: int = 256, categories: int = 60) -> Path:
    from mgap.store.build import store_from_arrays

    rng = np.random.default_rng(0)
    primary = np.arange(n) % categories
    X = rng.normal(size=(n, d)) + np.eye(d)[primary % d] * 2.0
    Y = X + rng.normal(size=(n, d))
    names = [f"class{c:02d}" for c in range(categories)]
    return store_from_arrays(
        path,
        image_embeddings=X,
        text_embeddings=Y,
        category_names=names,
        supercategories=[f"super{c % 6}" for c in range(categories)],
        primary=primary,
        labels=np.eye(categories, dtype=bool)[primary],
        provenance={"model": "bench", "dataset": "synthetic", "split": "test"},
    )


async def key_latencies(
    store_dir: Path, store: Path, keys: int
) -> tuple[list[float], list[float], list[str]]:
    from textual import events

    from mgap.tui.app import MgapApp

    app = MgapApp(store_dir, select=[store])
    app.animation_level = "none"
    seen: list[str] = []
    latencies: list[float] = []
    cpu: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one("#category-table")
        detail = app.query_one("#category-detail")
        results = app.query_one("#results-pane")
        deadline = time.monotonic() + 300
        while table.row_count < 2 or results.busy:  # gap, retrieval and scatter all shown
            if time.monotonic() > deadline:
                raise SystemExit("the Results pane never finished its analysis")
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        for _ in range(min(keys, table.row_count - 1)):
            before = str(detail.content)
            started, cpu_started = time.perf_counter(), time.process_time()
            app.post_message(events.Key("down", None))
            while str(detail.content) == before:
                await asyncio.sleep(0)
            latencies.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            seen.append(str(detail.content))
            await asyncio.sleep(0.03)  # a person's key repeat, not a flood
    return latencies, cpu, seen


def latency_run(store_dir: Path, store: Path, keys: int, writer_rows: int) -> tuple:
    writer = None
    if writer_rows:
        live = store_dir / "synthetic-test__bench-live.h5"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(live), str(writer_rows), "512"],
            stdout=subprocess.DEVNULL,
        )
        while not live.with_name(live.name + ".progress.json").exists():
            time.sleep(0.05)
    try:
        latencies, cpu, seen = asyncio.run(key_latencies(store_dir, store, keys))
        still_writing = writer is not None and writer.poll() is None
    finally:
        if writer is not None:
            writer.kill()
            writer.wait()
    return latencies, cpu, seen, still_writing


def projection(points: int):
    from mgap.engine.measures.projections import Projection

    rng = np.random.default_rng(0)
    categories = 80
    modality = (np.arange(points) % 2).astype(np.int8)
    return Projection(
        coords=rng.normal(size=(points, 2)).astype(np.float32) + modality[:, None] * 2.0,
        modality=modality,
        category=(np.arange(points) // 2) % categories,
        image_index=np.arange(points) // 2,
        category_names=[f"class{c}" for c in range(categories)],
        n_shown=points,
        n_total=points,
        method="pca",
        params={},
        seconds=0.0,
        cached=False,
    )


async def scatter_times(points: int, repeats: int) -> tuple[list[float], list[float], bool]:
    from textual.app import App

    from mgap.engine.plots.terminal import render_scatter
    from mgap.tui.scatter import ScatterView

    proj = projection(points)

    class One(App):
        def compose(self):
            yield ScatterView(id="scatter")

    redraws, repaints, same = [], [], True
    app = One()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(ScatterView)
        view.color_by, view.highlight, view.caption = "category", "class3", "PCA"
        view.projection = proj
        sizes = [(120, 40), (100, 30), (80, 24), (140, 45)]
        for i in range(repeats * len(sizes)):
            width, height = sizes[i % len(sizes)]
            await pilot.resize_terminal(width, height)
            await pilot.pause()
            view._cache = None  # a resize: nothing cached for this size
            started = time.perf_counter()
            drawn = view.render()
            redraws.append(time.perf_counter() - started)
            started = time.perf_counter()
            again = view.render()
            repaints.append(time.perf_counter() - started)
            reference = render_scatter(
                proj,
                view.size.width,
                view.size.height,
                color_by="category",
                highlight="class3",
                title="PCA",
            )
            same &= drawn == again == reference
    return redraws, repaints, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp)
        frames = [first_frame(store_dir) for _ in range(args.repeats)]
        assert len({digest for _, _, digest in frames}) == 1, "the first screens differ"
        wall = Timing([seconds for seconds, _, _ in frames])
        cpu = Timing([cpu_seconds for _, cpu_seconds, _ in frames])
        print("\n1. time to first frame (process start -> Ready, 80x24)")
        print(f"   mgap tui {wall.median:.3f} s wall, {cpu.median:.3f} s CPU ({wall.spread})")
        print(f"   under the 1 s budget: {wall.median < 1.0}")

    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp)
        store = results_store(store_dir / "results.h5")
        idle, idle_cpu, seen_idle, _ = latency_run(store_dir, store, args.keys, 0)
        busy, busy_cpu, seen_busy, writing = latency_run(store_dir, store, args.keys, 200_000)
        assert seen_idle == seen_busy, "the metrics shown differ with a writer running"
        assert writing, "the writer finished before the keys did: give it more rows"
        print("\n2. key-to-update latency, Results category table (120x40), wall clock")
        report("   key latency, a job writing a store", Timing(busy), Timing(idle), "no job")
        report("   TUI CPU per key, a job writing", Timing(busy_cpu), Timing(idle_cpu), "no job")
        print(f"   under 50 ms while writing: {Timing(busy).median < 0.05}")

    redraws, repaints, same = asyncio.run(scatter_times(args.points, args.repeats))
    assert same, "the widget's drawing differs from render_scatter's"
    print(f"\n3. scatter, {args.points:,} points, 80 categories, highlight on")
    report("   redraw at a new size", Timing(redraws), Timing(repaints), "cached repaint")
    print(f"   redraw under 100 ms: {Timing(redraws).median < 0.1}")


if __name__ == "__main__":
    main()
