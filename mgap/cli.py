"""The `mgap` command line (Typer). Commands live in `mgap.commands.*`, one module per group.

Start-up imports neither torch nor textual: command modules import heavy libraries inside
the command functions. Errors the user can act on are `MgapError`s, printed as one line.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from typer._click import exceptions as click_errors  # typer vendors click: its errors live here

from mgap import __version__
from mgap.core.errors import MgapError

#: modules of `mgap.commands` whose `register(app)` adds their commands, in help order
COMMAND_MODULES = (
    "extract_cmd",
    "store_cmds",
    "gap_cmd",
    "retrieval_cmd",
    "examples_cmd",
    "zeroshot_cmd",
    "neighbours_cmd",
    "experiment_cmd",
    "robustness_cmd",
    "traverse_cmd",
    "align_cmds",
    "compare_cmd",
    "plot_cmd",
    "attention_cmd",
    "itm_cmd",
    "models_cmd",
    "demo_cmds",
    "tui_cmd",
    "schema_cmd",
)

app = typer.Typer(
    name="mgap",
    help="Measure the modality gap and representational alignment of vision-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mgap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mgap: extract embeddings into HDF5 stores, then measure gaps, CKA and neighbourhoods."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"mgap.commands.{_name}").register(app)


def _usage_line(exc: click_errors.UsageError) -> str:
    """click's usage error as one line (not the boxed panel) with where to read more."""
    command = exc.ctx.command_path if exc.ctx is not None else "mgap"
    return f"mgap: error: {' '.join(exc.format_message().split())} (see `{command} --help`)"


def main() -> None:
    """Console entry point: one-line errors, documented exit codes (0 ok, 1 failed, 2 usage)."""
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        print(_usage_line(exc), file=sys.stderr)
        sys.exit(2)
    except click_errors.ClickException as exc:
        print(f"mgap: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("mgap: interrupted", file=sys.stderr)
        sys.exit(130)
    except MgapError as exc:
        print(f"mgap: error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("mgap: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("MGAP_DEBUG"):
            raise
        print(
            f"mgap: error: {type(exc).__name__}: {exc} (set MGAP_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
