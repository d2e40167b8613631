"""`mgap attention`: vision-tower attention maps and their entropy for a sample of a store's
images (recomputed with the store's model: an engine job, so torch loads only here)."""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.commands.extract_cmd import parse_options
from mgap.commands.report_common import JSON_OPT, STORE_ARG, print_header, table, typed
from mgap.output import fmt, note, print_json, stdout

HEATMAP_WIDTH, HEATMAP_HEIGHT = 56, 14


def _spread_cells(s: dict) -> list[str]:
    return [str(s.get("n", 0))] + [fmt(s.get(key)) for key in ("mean", "std", "min", "max")]


def print_attention(doc: dict, *, show: int, ascii: bool) -> None:
    """Summary, per-category table, then heatmaps of the first `show` images."""
    from PIL import Image

    from mgap.engine.plots.heatmap import render_heatmap

    print_header(doc)
    grid = "×".join(map(str, doc["grid"])) if doc["grid"] else "per image"
    stdout.print(
        f"layer {doc['layer']} of 0..{doc['n_layers'] - 1}  query {doc['query']}  grid {grid}"
        f"  images {doc['n_images']}",
        highlight=False,
    )
    out = table(
        "Attention entropy (nats, natural log over the patch distribution)",
        ["", "n", "mean", "std", "min", "max"],
        caption="uniform = log(#patches), the entropy of an even map; relative = H / log(#patches)",
    )
    out.add_row("entropy", *_spread_cells(doc["entropy"]))
    out.add_row("uniform", *_spread_cells(doc["uniform_entropy"]))
    out.add_row("relative", *_spread_cells(doc["relative_entropy"]))
    stdout.print(out)
    if len(doc["by_category"]) > 1:
        per = table("Entropy per primary category", ["category", "n", "mean", "std", "min", "max"])
        for name, s in doc["by_category"].items():
            per.add_row(name, *_spread_cells(s))
        stdout.print(per)
    colour = not ascii and stdout.color_system is not None and not stdout.no_color
    width = max(8, min(HEATMAP_WIDTH, stdout.width))
    for row in doc["images"][:show]:
        with Image.open(row["path"]) as image:
            text = render_heatmap(
                image.convert("RGB"),
                row["map"],
                width,
                HEATMAP_HEIGHT,
                coverage=doc["coverage"],
                ascii=not colour,
            )
        stdout.print(
            f"\n{row['id']}  {row['category'] or '-'}  grid {row['grid'][0]}×{row['grid'][1]}"
            f"  H {fmt(row['entropy'], 3)} of log n {fmt(row['uniform_entropy'], 3)}",
            highlight=False,
        )
        stdout.print(text)
    for item in doc["skipped"]:
        note(f"skipped {item['id']}: {item['reason']}")


def write_pngs(doc: dict, folder: Path) -> list[Path]:
    from PIL import Image

    from mgap.engine.plots.heatmap import save_heatmap_png

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in doc["images"]:
        with Image.open(row["path"]) as image:
            written.append(
                save_heatmap_png(
                    image,
                    row["map"],
                    folder / f"{Path(row['id']).stem}.png",
                    coverage=doc["coverage"],
                    title=f"{row['id']} · {row['category'] or '-'} · H {row['entropy']:.3f}"
                    f" / log n {row['uniform_entropy']:.3f}",
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
    doc = attention_report(
        request, lambda done, total: note(f"mgap attention: {done}/{total} images")
    )
    if data_root is None:  # a result from moved images is not the store's own
        save_attention(store, images, layer, seed, doc)
    if png is not None:
        paths = write_pngs(doc, png)
        note(f"wrote {len(paths)} PNG heatmaps to {png}")
    if as_json:
        print_json(typed("attention", doc))
    else:
        print_attention(doc, show=show, ascii=ascii)


def register(app: typer.Typer) -> None:
    app.command("attention")(attention)
