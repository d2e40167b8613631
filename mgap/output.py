"""Output conventions shared by every command: JSON on stdout, people's text on stderr/stdout.

`--json` prints exactly one JSON document on stdout; progress and notes go to stderr.
Colour only on a TTY; NO_COLOR and FORCE_COLOR are honoured (rich reads them).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

stdout = Console(soft_wrap=False)
stderr = Console(stderr=True, soft_wrap=True)


def _clean(value: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None so the document is strict JSON."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(_clean(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A line for people on stderr (never mixed into --json output)."""
    stderr.print(message, highlight=False)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "nan"
    return str(value)
