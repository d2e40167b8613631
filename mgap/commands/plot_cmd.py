"""`mgap plot`: the image and text clouds of a store as a terminal scatter or a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.report_common import CHECK_OPT
from mgap.core.errors import UsageError
from mgap.output import note, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.measures.projections import Projection


def plot(
    store_path: Path = typer.Argument(..., metavar="STORE", help="A store file (.h5)."),
    check: bool = CHECK_OPT,
    method: str = typer.Option("umap", "--method", "-m", help="umap, tsne or pca."),
    by_category: bool = typer.Option(
        False, "--by-category", help="Colour by each image's primary category."
    ),
    category: str | None = typer.Option(
        None, "--category", help="Highlight one category (drawn bright, the rest dimmed)."
    ),
    pairs: bool = typer.Option(False, "--pairs", help="Join images to their captions."),
    png: Path | None = typer.Option(
        None, "--png", help="Write the figure as PNG instead of drawing it in the terminal."
    ),
    max_points: int = typer.Option(
        20000, "--max-points", help="Fit on a stratified sample beyond this many points."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed of the sample and the layout."
    ),
    n_neighbors: int | None = typer.Option(None, "--n-neighbors", help="UMAP (default 15)."),
    min_dist: float | None = typer.Option(None, "--min-dist", help="UMAP (default 0.1)."),
    perplexity: float | None = typer.Option(None, "--perplexity", help="t-SNE (default 30)."),
    width: int | None = typer.Option(None, "--width", help="Columns (default: the terminal)."),
    height: int | None = typer.Option(None, "--height", help="Rows (default: the terminal)."),
    ascii_only: bool = typer.Option(False, "--ascii", help="Plain ASCII marks, no braille."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Refit even if a result is cached."),
    json_out: bool = typer.Option(False, "--json", help="Print the projection summary as JSON."),
) -> None:
    """Project image and text embeddings together (UMAP by default) and draw the scatter.

    Results are cached beside the store, so drawing it again is instant.
    """
    from mgap.engine.plots.palette import find_category
    from mgap.engine.studies.projections import plot_report, project_store
    from mgap.store import open_store

    if width is not None and width < 20 or height is not None and height < 8:
        raise UsageError("the plot needs at least 20 columns and 8 rows")
    store = open_store(store_path)
    if category is not None:
        find_category(store.category_names, category)
    method = method.lower()
    slow_start = " (umap-learn compiles itself on first use)" if method == "umap" else ""
    params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "perplexity": perplexity}
    projection = project_store(
        store,
        method=method,
        max_points=max_points,
        seed=seed,
        use_cache=not no_cache,
        on_fit=lambda message: note(message + slow_start),
        **{k: v for k, v in params.items() if v is not None},
    )
    note(
        f"{projection.title()}: {projection.shown_label()} in {projection.seconds:.2f} s"
        + (" (cached)" if projection.cached else "")
    )
    color_by = "category" if by_category else "modality"
    if png is not None:
        from mgap.engine.plots.png import save_png

        save_png(projection, png, color_by=color_by, highlight=category, pairs=pairs)
        note(f"wrote {png}")
    if json_out:
        print_json(plot_report(projection, png).to_json())
    elif png is None:
        draw = {"color_by": color_by, "highlight": category, "pairs": pairs}
        print_scatter(projection, width, height, ascii_only, **draw)


def print_scatter(
    projection: Projection, width: int | None, height: int | None, ascii_only: bool, **draw
) -> None:
    """The scatter in the terminal, at the given size or the terminal's."""
    from mgap.engine.plots.terminal import render_scatter

    size = stdout.size
    text = render_scatter(
        projection,
        width or size.width,
        height or max(12, size.height - 1),
        title=projection.title(),
        ascii=ascii_only,
        **draw,
    )
    stdout.print(text, crop=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("plot")(plot)
