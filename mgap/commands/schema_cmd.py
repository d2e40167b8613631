"""`mgap schema COMMAND`: the JSON Schema of a command's `--json` output, for scripts.

Generated from the engine's report dataclasses (`mgap.engine.reports`), so a field added
to a report shows here without further change.
"""

from __future__ import annotations

import typer

from mgap.core.errors import UsageError
from mgap.output import print_json


def schema(
    command: list[str] | None = typer.Argument(
        None, help="The command, e.g. gap, retrieval, or experiment shift.", show_default=False
    ),
) -> None:
    """Print the JSON Schema of COMMAND's --json document (no COMMAND: list them)."""
    from mgap.engine.reports import REPORTS, json_schema

    if not command:
        for name in sorted(REPORTS):
            typer.echo(name)
        return
    name = " ".join(command)
    if name not in REPORTS:
        raise UsageError(
            f"no JSON Schema for {name!r}",
            hint=f"commands with one: {', '.join(sorted(REPORTS))}",
        )
    print_json(json_schema(REPORTS[name]))


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
