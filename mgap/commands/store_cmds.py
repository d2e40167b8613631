"""`mgap ls`, `info`, `verify`, `export`, `import`: working with store files."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import typer

from mgap.commands.report_common import CHECK_OPT
from mgap.core.errors import UsageError
from mgap.output import fmt, note, print_json, stdout


def ls(
    store_dir: Path | None = typer.Option(
        None, "--store-dir", help="Default: $MGAP_STORE_DIR or ./mgap-stores."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the stores in the store directory with status, model and rows."""
    from mgap.config import load_config
    from mgap.engine.reports.stores import store_list
    from mgap.store.listing import NOT_A_STORE

    root = store_dir or load_config().store_dir
    if Path(root).exists() and not Path(root).is_dir():
        raise UsageError(
            f"{root} is a file, not a store folder",
            hint="pass --store-dir FOLDER (or set $MGAP_STORE_DIR to a folder)",
        )
    report = store_list(root)
    if json_out:
        print_json(report.to_json())
        return
    entries = [e for e in report.stores if e.status != NOT_A_STORE]
    others = [e.name for e in report.stores if e.status == NOT_A_STORE]
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        note(f"{len(others)} .h5 files in {root} are not mgap stores (left out): {shown}")
    if not entries:
        note(f"no stores in {root} (create one with `mgap extract` or `mgap demo`)")
        return
    from rich.table import Table

    table = Table(title=f"stores in {root}", title_justify="left")
    for column in (
        "store",
        "status",
        "model",
        "dataset",
        "images",
        "texts",
        "dim",
        "skipped",
        "MB",
    ):
        table.add_column(
            column,
            justify="right" if column in ("images", "texts", "dim", "skipped", "MB") else "left",
        )
    for e in entries:
        style = {"complete": "green", "running": "cyan", "partial": "yellow"}.get(e.status, "red")
        table.add_row(
            e.name,
            f"[{style}]{e.status}[/]",
            e.model,
            f"{e.dataset}/{e.split}",
            str(e.n_images),
            str(e.n_texts),
            fmt(e.dim),
            str(e.skipped),
            f"{e.size_mb:.1f}",
        )
    stdout.print(table)
    for e in entries:
        if e.status == "broken":
            note(f"{e.name}: {e.error}")
        elif e.shards:
            note(f"{e.name}: from {e.shards} WebDataset shards, {e.samples} samples")
        _note_leftover_ranks(e.path, e.name, e.status)


def _note_leftover_ranks(path: str | Path, name: str, status: str) -> None:
    """One line while a complete store still has its rank stores beside it (store/merge.py)."""
    from mgap.store.merge import leftover_ranks

    size = leftover_ranks(path) if status == "complete" else None
    if size is not None:
        note(
            f"{name}: {name}.ranks holds {size / 1e6:.1f} MB of rank stores left by an "
            "--nproc run; the next `mgap extract` of this store removes them"
        )


def _layers_line(ls: dict) -> str:
    """One side's per-layer states: which, in which spaces and widths, and what they are."""
    spaces = ", ".join(f"{sp} (width {ls['widths'][sp]})" for sp in ls["spaces"])
    lens = f"; lens: {ls['lens']}" if ls["lens"] else ""
    layers = ",".join(map(str, ls["layers"]))
    return f"{layers} of {ls['count']}; {spaces}; pooling: {ls['pooling']}{lens}"


def info(
    store: Path = typer.Argument(..., help="A store file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show a store's contents and provenance."""
    from mgap.engine.reports.stores import StoreInfo
    from mgap.store import open_store

    s = open_store(store)
    report = StoreInfo.of(s)
    if json_out:
        print_json(report.to_json())
        return
    from rich.table import Table

    table = Table(show_header=False, title=str(store), title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in (
        "status",
        "model",
        "dataset",
        "split",
        "n_images",
        "n_texts",
        "dim",
        "skipped",
        "n_categories",
        "geometry",
    ):
        table.add_row(key, fmt(getattr(report, key)))
    if report.geometry == "lorentz":
        table.add_row("curvature", f"-{fmt(report.curvature)}")
    for key in (
        "family",
        "weights",
        "embedding_image",
        "embedding_text",
        "preprocessing",
        "precision",
        "device",
        "batch_size",
        "decode",
        "world_size",
        "shards",
        "samples",
        "created",
        "finished",
        "mgap_version",
    ):
        if s.attrs.get(key) not in (None, ""):
            table.add_row(key, str(s.attrs[key]))
    if s.perturbations:
        seed = s.attrs.get("perturb_seed", 0)
        table.add_row("perturbations", f"{', '.join(s.perturbations)} (seed {seed})")
    for side, ls in (report.layers or {}).items():
        table.add_row(f"{side} layers", _layers_line(ls))
    stdout.print(table)
    _note_leftover_ranks(store, Path(store).name, s.status)
    if s.skipped:
        note(
            f"{len(s.skipped)} skipped images, e.g. "
            + "; ".join(f"{k}: {v}" for k, v in list(s.skipped.items())[:3])
        )


def verify(store: Path = typer.Argument(..., help="A store file.")) -> None:
    """Check shapes, row counts, ids, caption references, NaN/inf and status (exit 1 if not ok)."""
    from mgap.store.verify import verify_store

    problems = verify_store(store)
    if problems:
        for problem in problems:
            note(f"{store}: {problem}")
        raise typer.Exit(1)
    note(f"{store}: ok")


def export(
    store: Path = typer.Argument(..., help="A store file."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    fmt_: str = typer.Option("npy", "--format", help="Embedding format: npy|csv."),
    check: bool = CHECK_OPT,
) -> None:
    """Write embeddings (.npy or .csv, in the store's row order) and ids/captions as CSV."""
    if fmt_ not in ("npy", "csv"):
        raise UsageError(f"--format must be npy or csv, got {fmt_!r}")
    import numpy as np

    from mgap.store import open_store
    from mgap.store.naming import make_folder

    s = open_store(store)
    make_folder(out, "the export folder")
    written = []
    perturbed = [
        (f"image_{setting.replace(':', '_')}", True, partial(s.perturbed_image_embeddings, setting))
        for setting in s.perturbations
    ]
    for side, has, read in (
        ("image", s.has_images, s.image_embeddings),
        ("text", s.has_texts, s.text_embeddings),
        *perturbed,  # image_noise_0.05_embeddings.npy, ... in the same rows as the clean side
    ):
        if not has:
            continue
        emb = read(dtype=np.float32)
        path = out / f"{side}_embeddings.{fmt_}"
        if fmt_ == "npy":
            np.save(path, emb)
        else:
            np.savetxt(path, emb, delimiter=",", fmt="%.7g")
        written.append(path.name)
    names = s.primary_names()
    with (out / "images.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "image_id", "path", "primary_category", "categories"])
        for i, (image_id, path) in enumerate(zip(s.image_ids, s.image_paths, strict=True)):
            cats = (
                [s.category_names[j] for j in np.flatnonzero(s.labels[i])]
                if s.category_names
                else []
            )
            w.writerow([i, image_id, path, names[i], ";".join(cats)])
    with (out / "texts.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "image_row", "image_id", "caption"])
        for i, (row, caption) in enumerate(zip(s.text_image_index, s.captions, strict=True)):
            w.writerow([i, row, s.image_ids[row], caption])
    note(f"wrote {', '.join([*written, 'images.csv', 'texts.csv'])} to {out}")


def import_(
    files: list[Path] | None = typer.Argument(
        None, help="(2, N, d) .npy, .npz, or an *_img.pt/*_txt.pt pair."
    ),
    out: Path = typer.Option(..., "--out", help="The store file to write."),
    name: str | None = typer.Option(
        None, "--name", help="Label recorded as the model and dataset."
    ),
    image: Path | None = typer.Option(None, "--image", help="Image embeddings (.npy/.pt)."),
    text: Path | None = typer.Option(None, "--text", help="Text embeddings (.npy/.pt)."),
    ids: Path | None = typer.Option(None, "--ids", help="Text file: one image id per image row."),
    captions: Path | None = typer.Option(
        None, "--captions", help="Text file: one caption per text row."
    ),
    categories: Path | None = typer.Option(
        None, "--categories", help="Text file: one category per image row."
    ),
    caption_image_row: Path | None = typer.Option(
        None, "--caption-image-row", help="Text file: image row of each caption."
    ),
    geometry: str = typer.Option(
        "euclidean", "--geometry", help="euclidean|lorentz (MERU-style space components)."
    ),
    curvature: float = typer.Option(
        1.0, "--curvature", help="C for a Lorentz space of curvature -C."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
) -> None:
    """Import embeddings computed by other tools into a store."""
    from mgap.engine.extract.importers import import_embeddings

    path = import_embeddings(
        list(files or []),
        out,
        image=image,
        text=text,
        name=name,
        geometry=geometry,
        curvature=curvature,
        ids_file=ids,
        captions_file=captions,
        categories_file=categories,
        caption_image_row_file=caption_image_row,
        overwrite=overwrite,
    )
    from mgap.store import open_store

    s = open_store(path)
    note(
        f"wrote {path}: {s.n_images} images, {s.n_texts} texts, dim {s.dim}, geometry {s.geometry}"
    )


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("info")(info)
    app.command("verify")(verify)
    app.command("export")(export)
    app.command("import")(import_)
