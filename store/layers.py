"""Per-layer pooled states beside the embeddings (`mgap extract --layers`, design §5).

For each tower, `/<side>s/layers/<space>/<layer>` holds one pooled vector per row for
one hidden state of the tower: `raw` is the pooled state as it is, `lens` is that state
through the tower's own final norm and projection, so it lands in the joint embedding
space. Layer `0` is the tower's input to its first block (the embedding output), layer
`k` the output of block `k`; the group's attributes say exactly what was pooled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h5py

#: the two per-layer spaces: the pooled state as it is, and through the tower's head
SPACES = ("raw", "lens")


@dataclass(frozen=True)
class LayerSet:
    """Which layers of one tower a store holds, and what each vector is."""

    side: str  # "image" or "text"
    count: int  # hidden states of the tower: its input to block 1 plus one per block
    layers: tuple[int, ...]  # absolute layer indices stored, ascending
    spaces: tuple[str, ...]  # a subset of SPACES, in that order
    pooling: str  # exactly what one vector of a layer is, for `raw`
    lens: str  # what `lens` applies to a pooled state ("" when not stored)
    widths: dict[str, int]  # the vector width of each space

    def resolve(self, given: int) -> int:
        """The absolute index of `given` (negative counts from the last block)."""
        index = given + self.count if given < 0 else given
        if not 0 <= index < self.count:
            raise IndexError(given)
        return index


def group_name(side: str) -> str:
    return f"{side}s/layers"


def dataset_name(side: str, space: str, layer: int) -> str:
    """The dataset of one layer's pooled vectors of one side in one space."""
    return f"{group_name(side)}/{space}/{layer}"


def _json_list(value: object) -> list:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        out = json.loads(value) if isinstance(value, str) and value else []
    except json.JSONDecodeError:
        return []
    return out if isinstance(out, list) else []


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_layer_sets(f: h5py.File) -> dict[str, LayerSet]:
    """The layer sets of an open store, keyed by side; empty when it has none."""
    found: dict[str, LayerSet] = {}
    for side in ("image", "text"):
        group = f.get(group_name(side))
        if not isinstance(group, h5py.Group):
            continue
        spaces = tuple(s for s in SPACES if isinstance(group.get(s), h5py.Group))
        layers = tuple(sorted(int(x) for x in _json_list(group.attrs.get("layers"))))
        if not spaces or not layers:
            continue
        widths = {s: int(group[s][str(layers[0])].shape[1]) for s in spaces}
        found[side] = LayerSet(
            side=side,
            count=int(group.attrs.get("count", max(layers) + 1)),
            layers=layers,
            spaces=spaces,
            pooling=_text(group.attrs.get("pooling", "")),
            lens=_text(group.attrs.get("lens", "")),
            widths=widths,
        )
    return found


def write_layer_attrs(
    f: h5py.File, side: str, *, count: int, layers: list[int], pooling: str, lens: str
) -> h5py.Group:
    """Create `/<side>s/layers` with the attributes that say what its vectors are."""
    group = f.require_group(group_name(side))
    group.attrs["count"] = int(count)
    group.attrs["layers"] = json.dumps(sorted(int(x) for x in layers))
    group.attrs["pooling"] = pooling
    group.attrs["lens"] = lens
    return group
