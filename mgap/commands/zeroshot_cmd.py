"""`mgap zeroshot`: zero-shot classification accuracy from a store's class prompts."""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.commands.report_common import JSON_OPT, STORE_ARG, open_store_arg, print_header, table
from mgap.output import fmt, print_json, stdout


def print_zeroshot(doc: dict) -> None:
    """Overall and per-class accuracy; classes with neither images nor predictions are left out."""
    print_header(doc)
    out = table(
        f"Zero-shot ({doc['label_set']})",
        ["class", "images", "accuracy", "predicted"],
        caption=f"accuracy {fmt(doc['accuracy'])}, mean per class "
        f"{fmt(doc['mean_class_accuracy'])} over {doc['n']} images"
        f"{' (top-1 in labels)' if doc['multi_label'] else ''}",
    )
    for row in doc["per_class"]:
        if row["n"] or row["n_predicted"]:
            out.add_row(row["name"], str(row["n"]), fmt(row["accuracy"]), str(row["n_predicted"]))
    stdout.print(out)


def zeroshot(
    store: Path = STORE_ARG,
    labels: str = typer.Option(
        "category", "--labels", help="Label set: category, or an image attribute name."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Zero-shot classification accuracy from the store's class prompt embeddings."""
    from mgap.engine.analysis.zeroshot import zero_shot_report

    doc = zero_shot_report(open_store_arg(store), labels)
    if as_json:
        print_json(doc)
    else:
        print_zeroshot(doc)


def register(app: typer.Typer) -> None:
    app.command("zeroshot")(zeroshot)
