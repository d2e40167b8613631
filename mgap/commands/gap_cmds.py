"""`mgap gap`, `retrieval`, `zeroshot`, `neighbours` and `experiment shift|ablate`.

Rich tables for people, one JSON document with --json. Analysis modules are imported
inside the commands; none of them imports torch or textual (sklearn only for the
separability column of `mgap gap`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.errors import UsageError
from mgap.output import fmt, print_json, stdout

DEFAULT_LAMBDAS = "-1,-0.5,-0.25,0,0.25,0.5,0.75,1"

STORE_ARG = typer.Argument(..., help="Store file (.h5).", show_default=False)
JSON_OPT = typer.Option(False, "--json", help="Print one JSON document on stdout.")
BY_CATEGORY_OPT = typer.Option(
    False, "--by-category", help="Add results per primary category and supercategory."
)
CAPTIONS_OPT = typer.Option(
    "all", "--captions", help="all: every caption; first: the first caption per image."
)


KIND_SHORT = {"category": "cat", "supercategory": "super"}


def _table(title: str, columns: list[str], caption: str | None = None):
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        header_style="bold",
    )
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def _open(path: Path):
    from mgap.store import open_store

    return open_store(path)


def _header(doc: dict) -> None:
    stdout.print(
        f"[bold]{doc['store']}[/]\nmodel {doc['model'] or '-'}  dataset {doc['dataset'] or '-'}"
        f"  split {doc['split'] or '-'}  status {doc['status'] or '-'}",
        highlight=False,
    )


def _recall_cells(side: dict) -> list[str]:
    return [
        fmt(side["R@1"], 3),
        fmt(side["R@5"], 3),
        fmt(side["R@10"], 3),
        fmt(side["median_rank"], 1),
        fmt(side["mean_rank"], 1),
    ]


def _print_gap(doc: dict) -> None:
    _header(doc)
    table = _table(
        "Modality gap",
        ["metric", "value"],
        caption=f"{doc['n_images']} images, {doc['n_texts']} captions ({doc['captions']}), "
        f"d={doc['dim']}",
    )
    for label, key in (
        ("L2M  ||mean x - mean y||", "l2m"),
        ("L2I  mean paired ||x - y||", "l2i"),
        ("mean paired cosine", "mean_paired_cosine"),
        ("intra-image cosine", "intra_image_cosine"),
        ("intra-text cosine", "intra_text_cosine"),
        ("RMG", "rmg"),
    ):
        table.add_row(label, fmt(doc[key]))
    sep = doc.get("separability")
    if sep is not None:
        table.add_row(
            f"separability ({sep['folds']}-fold, {sep['n_per_side']}/side)", fmt(sep["accuracy"])
        )
    stdout.print(table)
    if doc["top_dims"]:
        dims = _table("Top gap dimensions", ["dim", "delta", "share of L2M²", "cumulative"])
        for row in doc["top_dims"]:
            dims.add_row(
                str(row["dim"]), fmt(row["delta"]), fmt(row["share"]), fmt(row["cumulative_share"])
            )
        stdout.print(dims)
    if "by_category" in doc:
        cats = _table(
            "By category, ranked by L2M",
            ["name", "kind", "img", "txt", "L2M", "L2I", "cos", "RMG"],
            caption="cos = mean paired cosine; --json adds the category x category tables",
        )
        for row in sorted(doc["by_category"], key=lambda r: (r["kind"], -r["l2m"])):
            cats.add_row(
                row["name"][:16],
                KIND_SHORT[row["kind"]],
                str(row["n_images"]),
                str(row["n_texts"]),
                fmt(row["l2m"], 3),
                fmt(row["l2i"], 3),
                fmt(row["mean_paired_cosine"], 3),
                fmt(row["rmg"], 3),
            )
        stdout.print(cats)
    if "hyperbolic" in doc:
        hyp = doc["hyperbolic"]
        table = _table(
            f"Hyperbolic (Lorentz, curvature {fmt(hyp['curvature'])})", ["metric", "value"]
        )
        table.add_row("tangent-space L2M", fmt(hyp["tangent_gap"]["l2m"]))
        table.add_row("tangent-space RMG", fmt(hyp["tangent_gap"]["rmg"]))
        for key, value in hyp["geodesic"].items():
            if key != "sampled_pairs":
                table.add_row(f"mean geodesic distance, {key.replace('_', '-')}", fmt(value))
        for side, value in hyp["origin_distance"].items():
            table.add_row(f"mean distance from origin, {side}", fmt(value))
        stdout.print(table)


def _print_retrieval(doc: dict) -> None:
    _header(doc)
    table = _table(
        "Retrieval",
        ["direction", "R@1", "R@5", "R@10", "med rank", "mean rank"],
        caption=f"{doc['n_images']} images, {doc['n_texts']} captions; ties {doc['ties']}",
    )
    table.add_row("image -> text", *_recall_cells(doc["i2t"]))
    table.add_row("text -> image", *_recall_cells(doc["t2i"]))
    stdout.print(table)
    if "by_category" in doc:
        cats = _table(
            "By category",
            ["name", "kind", "img", "i2t R@1", "i2t R@5", "t2i R@1", "t2i R@5"],
            caption="queries of each group, ranked against the whole gallery",
        )
        for row in doc["by_category"]:
            cats.add_row(
                row["name"][:16],
                KIND_SHORT[row["kind"]],
                str(row["n_images"]),
                fmt(row["i2t"]["R@1"], 3),
                fmt(row["i2t"]["R@5"], 3),
                fmt(row["t2i"]["R@1"], 3),
                fmt(row["t2i"]["R@5"], 3),
            )
        stdout.print(cats)


def _parse_lambdas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"--lambdas must be comma-separated numbers, got {text!r}",
            hint="e.g. --lambdas=-1,-0.5,0,0.5,1",
        ) from None
    if not values:
        raise UsageError("--lambdas is empty", hint="e.g. --lambdas=-1,-0.5,0,0.5,1")
    return values


def _print_experiment(title: str, key: str, rows: list[dict]) -> None:
    columns = [key, "L2M", "RMG", "paired cos", "i2t R@1", "t2i R@1"]
    if rows and "infonce" in rows[0]:
        columns.append("InfoNCE")
    table = _table(title, columns)
    for row in rows:
        cells = [
            fmt(row[key], 3) if isinstance(row[key], float) else str(row[key]),
            fmt(row["l2m"]),
            fmt(row["rmg"]),
            fmt(row["mean_paired_cosine"]),
            fmt(row["i2t"]["R@1"], 3),
            fmt(row["t2i"]["R@1"], 3),
        ]
        if "infonce" in row:
            cells.append(fmt(row["infonce"]))
        table.add_row(*cells)
    stdout.print(table)


def register(app: typer.Typer) -> None:
    @app.command("gap")
    def gap(
        store: Path = STORE_ARG,
        by_category: bool = BY_CATEGORY_OPT,
        captions: str = CAPTIONS_OPT,
        top_k: int = typer.Option(10, "--top-k", min=0, help="Gap dimensions to list."),
        no_separability: bool = typer.Option(
            False, "--no-separability", help="Skip the logistic-regression separability."
        ),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Modality gap metrics: L2M, L2I, paired and intra-modal cosines, RMG, top dims."""
        from mgap.engine.analysis.gap import gap_report

        doc = gap_report(
            _open(store),
            captions=captions,
            by_category=by_category,
            top_k=top_k,
            separability=not no_separability,
        )
        if as_json:
            print_json(doc)
        else:
            _print_gap(doc)

    @app.command("retrieval")
    def retrieval(
        store: Path = STORE_ARG,
        by_category: bool = BY_CATEGORY_OPT,
        captions: str = CAPTIONS_OPT,
        as_json: bool = JSON_OPT,
    ) -> None:
        """Image->text and text->image recall@1/5/10 and ranks (CLIP_benchmark hit rates)."""
        from mgap.engine.analysis.retrieval import retrieval_report

        doc = retrieval_report(_open(store), by_category=by_category, captions=captions)
        if as_json:
            print_json(doc)
        else:
            _print_retrieval(doc)

    @app.command("zeroshot")
    def zeroshot(
        store: Path = STORE_ARG,
        labels: str = typer.Option(
            "category", "--labels", help="Label set: category, or an image attribute name."
        ),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Zero-shot classification accuracy from the store's class prompt embeddings."""
        from mgap.engine.analysis.zeroshot import zero_shot_report

        doc = zero_shot_report(_open(store), labels)
        if as_json:
            print_json(doc)
            return
        _header(doc)
        table = _table(
            f"Zero-shot ({doc['label_set']})",
            ["class", "images", "accuracy", "predicted"],
            caption=f"accuracy {fmt(doc['accuracy'])}, mean per class "
            f"{fmt(doc['mean_class_accuracy'])} over {doc['n']} images"
            f"{' (top-1 in labels)' if doc['multi_label'] else ''}",
        )
        for row in doc["per_class"]:
            if row["n"] or row["n_predicted"]:
                table.add_row(
                    row["name"], str(row["n"]), fmt(row["accuracy"]), str(row["n_predicted"])
                )
        stdout.print(table)

    @app.command("neighbours")
    def neighbours(store: Path = STORE_ARG, as_json: bool = JSON_OPT) -> None:
        """Kendall-tau distance between image and text category neighbourhoods (0 same, 0.5 chance)."""
        from mgap.engine.analysis.neighbourhood import neighbourhood_report

        doc = neighbourhood_report(_open(store))
        if as_json:
            print_json(doc)
            return
        _header(doc)
        table = _table(
            "Neighbourhoods: image vs text",
            ["category", "Kendall-tau distance"],
            caption=f"mean {fmt(doc['mean_distance'])} over {doc['n_categories']} categories "
            f"(0 same, 0.5 chance); text side: {doc['text_side']}",
        )
        for row in sorted(doc["per_category"], key=lambda r: r["distance"]):
            table.add_row(row["name"], fmt(row["distance"]))
        stdout.print(table)

    experiment = typer.Typer(
        help="Gap experiments: shift the modalities, ablate the gap dimensions.",
        no_args_is_help=True,
    )
    app.add_typer(experiment, name="experiment")

    @experiment.command("shift")
    def shift(
        store: Path = STORE_ARG,
        lambdas: str = typer.Option(
            DEFAULT_LAMBDAS, "--lambdas", help="Comma-separated shifts (use --lambdas=-1,0,1)."
        ),
        logit_scale: float = typer.Option(100.0, "--logit-scale", help="InfoNCE logit scale."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Mind the Gap's shift along the gap vector: gap, retrieval and InfoNCE per lambda."""
        from mgap.engine.analysis.experiments import gap_shift
        from mgap.engine.analysis.pairs import store_header, store_pairs

        values = _parse_lambdas(lambdas)
        opened = _open(store)
        X, Y, index = store_pairs(opened, what="the shift experiment")
        doc = {
            **store_header(opened),
            "logit_scale": logit_scale,
            "steps": gap_shift(X, Y, index, values, logit_scale=logit_scale),
        }
        if as_json:
            print_json(doc)
        else:
            _header(doc)
            _print_experiment(
                f"Gap shift (InfoNCE at logit scale {logit_scale:g})", "lambda", doc["steps"]
            )

    @experiment.command("ablate")
    def ablate(
        store: Path = STORE_ARG,
        k_max: int = typer.Option(10, "--k-max", min=0, help="Drop up to this many top gap dims."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Drop the top-k gap dimensions, re-normalise, recompute gap and retrieval."""
        from mgap.engine.analysis.experiments import ablate_dims
        from mgap.engine.analysis.pairs import store_header, store_pairs

        opened = _open(store)
        X, Y, index = store_pairs(opened, what="the ablation experiment")
        if k_max >= X.shape[1]:
            raise UsageError(f"--k-max {k_max} must be below the embedding dim {X.shape[1]}")
        doc = {**store_header(opened), "steps": ablate_dims(X, Y, index, k_max)}
        if as_json:
            print_json(doc)
        else:
            _header(doc)
            _print_experiment("Gap dimension ablation", "k", doc["steps"])
