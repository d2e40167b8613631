"""`mgap attention`: vision-tower attention maps and their entropy for a sample of a store's
images (recomputed with the store's model: an engine job, so torch loads only here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mgap.commands.extract_cmd import parse_options
from mgap.commands.report_common import JSON_OPT, STORE_ARG, print_header, table
from mgap.output import fmt, note, print_json, stdout

if TYPE_CHECKING:
    from mgap.engine.reports.studies import AttentionImage, AttentionReport, Spread

HEATMAP_WIDTH, HEATMAP_HEIGHT = 56, 14


def _spread_cells(s: Spread) -> list[str]:
    return [str(s.n)] + [fmt(value) for value in (s.mean, s.std, s.min, s.max)]


def print_attention(report: AttentionReport, *, show: int, ascii: bool) -> None:
    """Summary, per-category table, then heatmaps of the first `show` images."""
    print_header(report)
    grid = "×".join(map(str, report.grid)) if report.grid else "per image"
    stdout.print(
        f"layer {report.layer} of 0..{report.n_layers - 1}  query {report.query}  grid {grid}"
        f"  images {report.n_images}",
        highlight=False,
    )
    out = table(
        "Attention entropy (nats, natural log over the patch distribution)",
        ["", "n", "mean", "std", "min", "max"],
        caption="uniform = log(#patches), the entropy of an even map; relative = H / log(#patches)",
    )
    out.add_row("entropy", *_spread_cells(report.entropy))
    out.add_row("uniform", *_spread_cells(report.uniform_entropy))
    out.add_row("relative", *_spread_cells(report.relative_entropy))
    stdout.print(out)
    if len(report.by_category) > 1:
        per = table("Entropy per primary category", ["category", "n", "mean", "std", "min", "max"])
        for name, s in report.by_category.items():
            per.add_row(name, *_spread_cells(s))
        stdout.print(per)
    for image in report.images[:show]:
        print_heatmap(image, report.coverage, ascii)
    for item in report.skipped:
        note(f"skipped {item.id}: {item.reason}")


def print_heatmap(image: AttentionImage, coverage: str, ascii: bool) -> None:
    """One image's caption line and its attention heatmap drawn over it."""
    from PIL import Image

    from mgap.engine.plots.heatmap import render_heatmap

    colour = not ascii and stdout.color_system is not None and not stdout.no_color
    width = max(8, min(HEATMAP_WIDTH, stdout.width))
    with Image.open(image.path) as picture:
        text = render_heatmap(
            picture.convert("RGB"),
            image.map,
            width,
            HEATMAP_HEIGHT,
            coverage=coverage,
            ascii=not colour,
        )
    stdout.print(
        f"\n{image.id}  {image.category or '-'}  grid {image.grid[0]}×{image.grid[1]}"
        f"  H {fmt(image.entropy, 3)} of log n {fmt(image.uniform_entropy, 3)}",
        highlight=False,
    )
    stdout.print(text)


def write_pngs(report: AttentionReport, folder: Path) -> list[Path]:
    from PIL import Image

    from mgap.engine.plots.heatmap import save_heatmap_png

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in report.images:
        with Image.open(row.path) as image:
            written.append(
                save_heatmap_png(
                    image,
                    row.map,
                    folder / f"{Path(row.id).stem}.png",
                    coverage=report.coverage,
                    title=f"{row.id} · {row.category or '-'} · H {row.entropy:.3f}"
                    f" / log n {row.uniform_entropy:.3f}",
                )
            )
    return written


def attention(
    store: Path = STORE_ARG,
    images: int = typer.Option(16, "--images", min=1, help="How many images to sample (seeded)."),
    layer: int = typer.Option(-1, "--layer", help="Encoder layer, 0-based; -1 = the last."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the image sample."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:i]."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Image folder, when it moved since extraction."
    ),
    show: int = typer.Option(3, "--show", min=0, help="Heatmaps printed in the terminal."),
    ascii: bool = typer.Option(False, "--ascii", help="Density characters instead of colour."),
    png: Path | None = typer.Option(None, "--png", help="Write one PNG per image into DIR."),
    model_option: list[str] | None = typer.Option(
        None, "--model-option", help="Model option KEY=VALUE, as given to extract (repeatable)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Attention maps (CLS→patch, averaged over heads) and their entropy for sampled images.

    The result is also kept in the store's sidecar cache, where the TUI's Attention view
    finds it."""
    from mgap.engine.attention.cache import save_attention
    from mgap.engine.attention.report import AttentionRequest, attention_report

    request = AttentionRequest(
        store=store,
        images=images,
        layer=layer,
        seed=seed,
        device=device,
        batch_size=batch_size,
        data_root=data_root,
        model_options=parse_options(model_option, "--model-option"),
    )
    report = attention_report(
        request, lambda done, total: note(f"mgap attention: {done}/{total} images")
    )
    if data_root is None:  # a result from moved images is not the store's own
        save_attention(store, images, layer, seed, report)
    if png is not None:
        paths = write_pngs(report, png)
        note(f"wrote {len(paths)} PNG heatmaps to {png}")
    if as_json:
        print_json(report.to_json())
    else:
        print_attention(report, show=show, ascii=ascii)


def register(app: typer.Typer) -> None:
    app.command("attention")(attention)
