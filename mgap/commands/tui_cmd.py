"""`mgap tui`: the keyboard-driven terminal UI (Textual is imported only when it runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from mgap.core.errors import UsageError


def tui(
    store_dir: Path | None = typer.Option(
        None,
        "--store-dir",
        metavar="DIR",
        help="Store directory (default: config store_dir / MGAP_STORE_DIR).",
    ),
    data_root: list[Path] | None = typer.Option(
        None,
        "--data-root",
        metavar="PATH",
        help="A dataset root to offer in the Datasets pane (repeatable).",
    ),
    ascii_only: bool = typer.Option(
        False, "--ascii", help="ASCII bars and borders for terminals without box-drawing glyphs."
    ),
    compact: bool = typer.Option(False, "--compact", help="Use the compact layout at any size."),
    groups: list[Path] | None = typer.Option(
        None,
        "--groups",
        metavar="FILE.csv",
        help="Groupings for Results › Groups: a CSV keyed by image id or file name (repeatable).",
    ),
) -> None:
    """Pick models and datasets, run and watch extraction jobs, browse gap/CKA/scatter results."""
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "mgap tui needs an interactive terminal",
            hint="run it in a terminal (ssh -t host mgap tui); scripts use the other commands",
        )
    for root in data_root or []:
        if not root.exists():
            raise UsageError(f"--data-root {root} does not exist")
    for csv in groups or []:
        if not csv.is_file():
            raise UsageError(f"--groups {csv} is not a file", hint="give a CSV keyed by image id")
    from mgap.tui.app import run_tui

    run_tui(
        store_dir,
        data_roots=list(data_root or []),
        ascii_only=ascii_only,
        compact=compact,
        group_files=list(groups or []),
    )
    _exit_now()


def _exit_now() -> None:
    """Quit without joining analysis threads: a UMAP or t-SNE fit cannot be interrupted and
    would hold the shell for seconds after `q`. Jobs are separate processes and keep running."""
    import os
    import sys
    import threading

    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def register(app: typer.Typer) -> None:
    app.command("tui")(tui)
