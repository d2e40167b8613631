"""`--layers` and `--layer-space`: what the user asked for, then what each tower stores.

The syntax is checked with the other options, before torch loads (`parse_layers`). Only
the loaded model knows its depth, so the indices are resolved per tower after it loads
and before any store is written (`plan_layers`): an index outside the tower, or a family
without layers, is refused in one line (docs/design.md §6; store layout in §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mgap.core.errors import UsageError
from mgap.store.layers import LayerSet

if TYPE_CHECKING:
    from mgap.engine.models.base import EmbeddingModel

#: what `--layer-space` accepts; `both` stores `lens` only where the tower has one
LAYER_SPACES = ("raw", "lens", "both")


@dataclass(frozen=True)
class LayerChoice:
    """The checked `--layers`/`--layer-space` pair: `indices` None means every layer."""

    indices: tuple[int, ...] | None
    space: str


def _index(item: str, text: str) -> int:
    try:
        return int(item)
    except ValueError:
        raise UsageError(
            f"--layers {text!r} is not 'all' or a comma-separated list of layer numbers",
            hint="write --layers all or --layers 0,4,8,-1 (negative counts from the last block)",
        ) from None


def parse_layers(text: str | None, space: str | None) -> LayerChoice | None:
    """The checked choice, or None when `--layers` was not given."""
    if space is not None and space not in LAYER_SPACES:
        raise UsageError(f"--layer-space must be raw, lens or both, got {space!r}")
    if text is None:
        if space is not None:
            raise UsageError("--layer-space needs --layers", hint="add --layers all")
        return None
    text = text.strip()
    if text == "all":
        return LayerChoice(None, space or "both")
    items = [item.strip() for item in text.split(",")]
    indices = tuple(_index(item, text) for item in items)
    if not indices or len(set(indices)) != len(indices):
        raise UsageError(f"--layers {text!r} names a layer twice", hint="list each layer once")
    return LayerChoice(indices, space or "both")


def _resolve(choice: LayerChoice, count: int, where: str) -> tuple[int, ...]:
    if choice.indices is None:
        return tuple(range(count))
    resolved = set()
    for given in choice.indices:
        index = given + count if given < 0 else given
        if not 0 <= index < count:
            raise UsageError(
                f"--layers {given} is out of range for {where}: it has {count} hidden states "
                f"(layers 0..{count - 1}, or -{count}..-1)",
                hint=f"pick layers within 0..{count - 1}, or pass --layers all",
            )
        resolved.add(index)
    if len(resolved) != len(choice.indices):
        raise UsageError(f"--layers names one layer of {where} twice", hint="list each layer once")
    return tuple(sorted(resolved))


def _spaces(choice: LayerChoice, lens: str, where: str) -> tuple[str, ...]:
    if choice.space == "raw" or (choice.space == "both" and not lens):
        return ("raw",)
    if not lens:
        raise UsageError(
            f"{where} has no lens (final norm and projection)", hint="--layer-space raw"
        )
    return ("lens",) if choice.space == "lens" else ("raw", "lens")


def plan_layers(model: EmbeddingModel, choice: LayerChoice | None) -> dict[str, LayerSet]:
    """Per side of `model`, the layers and spaces to store (widths filled in later by the
    store's probe pass); empty without `--layers`."""
    if choice is None:
        return {}
    sides: Sequence[str] = [
        s for s, has in (("image", model.has_image), ("text", model.has_text)) if has
    ]
    plan = {}
    for side in sides:
        tower = model.tower_layers(side)
        where = f"the {side} tower of {model.spec}"
        spaces = _spaces(choice, tower.lens, where)
        plan[side] = LayerSet(
            side=side,
            count=tower.count,
            layers=_resolve(choice, tower.count, where),
            spaces=spaces,
            pooling=tower.pooling,
            lens=tower.lens if "lens" in spaces else "",
            widths={},
        )
    return plan


def refuse_distributed_layers(choice: LayerChoice | None) -> None:
    """Rank stores are merged without per-layer datasets: `--layers` runs in one process."""
    if choice is not None:
        raise UsageError(
            "--layers cannot be combined with --nproc, torchrun or srun",
            hint="run the --layers extraction in one process",
        )
