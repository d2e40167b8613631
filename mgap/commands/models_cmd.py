"""`mgap models`: the model catalog, and an offline check of specs before a long job."""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.core.errors import UsageError
from mgap.output import note, print_json, stdout


def _table(entries: list, offline_only: bool) -> None:
    """Fits the terminal (80 columns at least): specs fold, descriptions are cut short."""
    from rich.table import Table

    fixed = 16 + 1 + 7 + 7  # borders and padding of 5 columns, then the narrow columns
    longest = max((len(e.spec) for e in entries), default=10)
    spec_width = min(longest, max(30, stdout.width - fixed - 14))
    table = Table(
        title="models" + (" available offline" if offline_only else ""),
        caption="* recommended; ✓ cached or local; any open_clip arch also takes @random",
    )
    table.add_column("", width=1)
    table.add_column("spec", overflow="fold", width=spec_width)
    table.add_column("sides", no_wrap=True, width=7)
    table.add_column("offline", no_wrap=True, justify="center", width=7)
    table.add_column(
        "description",
        overflow="ellipsis",
        no_wrap=True,
        max_width=max(12, stdout.width - fixed - spec_width),
    )
    for e in entries:
        sides = "+".join(s for s, on in (("img", e.image), ("txt", e.text)) if on)
        star = "*" if e.recommended else ""
        table.add_row(star, e.spec, sides, "✓" if e.available_offline else "-", e.description)
    stdout.print(table)
    note(f"{len(entries)} models; `mgap models --json` says where each one is")


def models(
    family: list[str] | None = typer.Option(
        None, "--family", "-f", help="Only these spec families (repeatable): open_clip, hf, ..."
    ),
    offline: bool = typer.Option(False, "--offline", help="Only models available offline."),
    check: list[str] | None = typer.Option(
        None,
        "--check",
        help="Check that SPEC's weights are available offline (repeatable); exit 1 if not.",
    ),
    store_dir: Path | None = typer.Option(
        None, "--store-dir", help="Also list the models of these stores (default: config)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """List the models mgap can embed with, marked available offline (cached or local)."""
    from mgap.engine.models.catalog import FAMILIES, catalog, check_offline

    if check:
        found = {spec: check_offline(spec) for spec in check}
        if json_out:
            print_json(
                [{"spec": s, "available_offline": True, "where": w} for s, w in found.items()]
            )
        else:
            for spec, where in found.items():
                stdout.print(f"{spec}: available offline ({where})", highlight=False)
        return
    unknown = sorted(set(family or ()) - set(FAMILIES))
    if unknown:
        raise UsageError(
            f"unknown model family {', '.join(unknown)}", hint=f"use one of: {', '.join(FAMILIES)}"
        )
    if store_dir is None:
        from mgap.config import load_config

        store_dir = load_config().store_dir
    entries = catalog(store_dir, families=tuple(family or FAMILIES))
    if offline:
        entries = [e for e in entries if e.available_offline]
    if json_out:
        print_json([e.to_json() for e in entries])
    else:
        _table(entries, offline)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
