"""The model list of one `mgap extract`: `--model` repeats, `--models FILE`, spec patterns
and checkpoint globs, resolved and checked before any work (docs/design.md §4, §6)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mgap.core.errors import ModelUnavailableError, UsageError
from mgap.engine.extract.distributed import LAUNCHER_PID_ENV
from mgap.engine.specs import is_pattern, read_model_list
from mgap.output import note, print_json, stdout


@dataclass(frozen=True)
class ModelList:
    """The specs as given and the concrete specs each stands for."""

    given: tuple[str, ...]
    expansions: dict[str, list[str]]
    #: a `--models FILE` or a pattern was given: the list is printed and checked as a whole
    zoo: bool

    @property
    def resolved(self) -> list[str]:
        return list(dict.fromkeys(s for specs in self.expansions.values() for s in specs))

    def scoped(self, options: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        """`PATTERN::KEY=VALUE` options apply to every model the pattern stands for."""
        out: dict[str, dict[str, str]] = {}
        for spec, values in options.items():
            for concrete in self.expansions.get(spec, [spec]):
                out.setdefault(concrete, {}).update(values)
        return out


def resolve_models(model: list[str] | None, models_file: Path | None) -> ModelList:
    """Every `--model` and `--models FILE` spec, patterns and checkpoint globs expanded."""
    given = list(model or [])
    if models_file is not None:
        given += read_model_list(models_file)
    if not given:
        raise UsageError("no model given", hint="pass --model FAMILY:ID[@TAG] or --models FILE")
    zoo = models_file is not None or any(is_pattern(spec) for spec in given)
    if not zoo:
        return ModelList(tuple(given), {spec: [spec] for spec in given}, False)
    from mgap.engine.models.catalog import expand_spec

    expansions = {spec: expand_spec(spec) for spec in dict.fromkeys(given)}
    return ModelList(tuple(given), expansions, True)


def announce(models: ModelList, *, dry_run: bool, json_out: bool, quiet: bool) -> None:
    """The resolved list and its count: on stdout for `--dry-run`, else as a note."""
    resolved = models.resolved
    if dry_run and json_out:
        print_json({"models": resolved, "count": len(resolved)})
        return
    rank = LAUNCHER_PID_ENV in os.environ  # the `--nproc` launcher printed it already
    if not (dry_run or (models.zoo and not quiet and not rank)):
        return
    lines = [f"mgap extract: {len(resolved)} model(s) resolved", *(f"  {s}" for s in resolved)]
    if dry_run:
        stdout.print("\n".join(lines), highlight=False, markup=False)
    else:
        note("\n".join(lines))


def check_weights(models: ModelList) -> None:
    """Fail at once, naming every model of the list whose weights are missing."""
    resolved = models.resolved
    if not models.zoo and len(resolved) < 2:
        return  # one model: its own loader says what is missing, as before
    from mgap.engine.models.catalog import missing_weights

    missing = missing_weights(resolved)
    if missing:
        raise ModelUnavailableError(
            f"weights missing for {len(missing)} of {len(resolved)} models: " + "; ".join(missing),
            hint="nothing was extracted; `mgap models --check SPEC` checks one",
        )
