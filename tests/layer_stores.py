"""Per-layer arrays written into a test store with h5py, exactly in the layout of
docs/store-format.md "Per-layer states" (what `mgap extract --layers` writes), each
with its block CRC32s as the writer stores them."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mgap.store import schema as S
from mgap.store.checksum import block_crcs
from mgap.store.layers import dataset_name, write_layer_attrs


def add_layers(
    path: Path,
    layers: dict[str, dict[str, dict[int, np.ndarray]]],
    *,
    count: int | None = None,
    dtype: str = "float32",
) -> Path:
    """Write `layers[side][space][layer]` (rows as the store's rows) into the store at
    `path`, with the group attributes `write_layer_attrs` sets."""
    with h5py.File(path, "a") as f:
        block_rows = int(f.attrs.get("block_rows", S.BLOCK_ROWS))
        valid = f[S.IMAGE_VALID][...]
        for side, spaces in layers.items():
            indices = sorted({k for arrays in spaces.values() for k in arrays})
            write_layer_attrs(
                f,
                side,
                count=count if count is not None else max(indices) + 1,
                layers=indices,
                pooling=f"class token of the {side} block output",
                lens="final norm then projection" if "lens" in spaces else "",
            )
            for space, arrays in spaces.items():
                for layer, values in arrays.items():
                    name = dataset_name(side, space, layer)
                    rows = values.astype(dtype)
                    f.create_dataset(name, data=rows)
                    flags = valid if side == "image" else None
                    f.create_dataset(
                        S.checksum_name(name), data=block_crcs(rows, flags, block_rows)
                    )
    return path
