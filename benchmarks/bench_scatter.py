"""Terminal scatter of 100,000 points: mgap's binned renderer against plotext given every point.

Run: python benchmarks/bench_scatter.py [--n 100000] [--width 200] [--height 50]

Both renderers draw the same projection on a canvas of the same size in the same process.
The check: plotext's bare plot area (no axes) and mgap's binned grid mark the same braille
dots in the same cells. Both sides: median of the same number of runs, min and max printed
(benchmarks/_harness.py); the ratio is plotext / mgap.
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import measure, report

from mgap.engine.measures.projections import Projection
from mgap.engine.plots.palette import color_groups
from mgap.engine.plots.terminal import (
    limits,
    occupied,
    plot_size,
    render_scatter,
    render_scatter_plotext,
    scatter_grid,
)


def synthetic(n: int, n_categories: int = 80, seed: int = 0) -> Projection:
    """Two offset clouds (images, texts) made of category blobs, like a UMAP of CLIP."""
    rng = np.random.default_rng(seed)
    half = n // 2
    category = rng.integers(0, n_categories, size=half)
    centres = rng.normal(scale=6.0, size=(n_categories, 2))
    images = centres[category] + rng.normal(size=(half, 2))
    texts = centres[category[: n - half]] + rng.normal(size=(n - half, 2)) + [12.0, 3.0]
    return Projection(
        coords=np.concatenate([images, texts]).astype(np.float32),
        modality=np.r_[np.zeros(half, np.int8), np.ones(n - half, np.int8)],
        category=np.r_[category, category[: n - half]],
        image_index=np.r_[np.arange(half), np.arange(n - half)],
        category_names=[f"category {i}" for i in range(n_categories)],
        n_shown=n,
        n_total=n,
        method="umap",
        params={},
        seconds=0.0,
        cached=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=200)
    parser.add_argument("--height", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="runs per side (median)")
    args = parser.parse_args()
    projection = synthetic(args.n)
    w, h = args.width, args.height
    print(f"{args.n:,} points, {w}x{h} characters")

    render_scatter(projection, w, h)  # imports and first-call costs out of the timing
    for color_by in ("modality", "category"):
        ours = measure(
            lambda c=color_by: render_scatter(projection, w, h, color_by=c, title="bench"),
            args.repeats,
        )
        theirs = measure(
            lambda c=color_by: render_scatter_plotext(projection, w, h, color_by=c), args.repeats
        )
        ratio = report(f"  colour by {color_by}", ours, theirs, "plotext (every point)")
        assert ours.median < 0.100, f"redraw took {ours.median * 1e3:.1f} ms (budget 100 ms)"
        assert ratio >= 10, "less than 10x faster than plotext"

    pairs = measure(lambda: render_scatter(projection, w, h, pairs=True), args.repeats)
    print(f"  with pairs: mgap {pairs.median:.3f} s ({pairs.spread})")

    # same plot area, cell for cell and dot for dot
    groups = color_groups(projection.modality, projection.category, projection.category_names)
    layout = plot_size(projection, w, h, groups=groups, title="bench")
    cols, rows = layout.cols, layout.rows
    xlim, ylim = limits(projection.coords)
    binned = measure(
        lambda: scatter_grid(projection.coords, groups, cols, rows, xlim=xlim, ylim=ylim),
        args.repeats,
    )
    plotext_bare = measure(
        lambda: render_scatter_plotext(projection, cols, rows, bare=True), args.repeats
    )
    grid, bare = binned.value, plotext_bare.value
    same_cells = np.array_equal(occupied(bare), grid.marks > 0)
    reference = np.array([[ord(c) for c in line] for line in bare.split("\n") if line])
    mine = np.where(grid.marks > 0, 0x2800 + grid.marks.astype(np.int64), 0x20)
    same_dots = np.array_equal(reference, mine)
    report(f"  plot area {cols}x{rows}, binning only", binned, plotext_bare, "plotext bare")
    print(
        f"  occupied cells {int((grid.marks > 0).sum()):,}, same cells: {same_cells}, "
        f"same dots: {same_dots}"
    )
    assert same_cells and same_dots


if __name__ == "__main__":
    main()
