"""What the Results › Depth view computes, behind one narrow seam (docs/design.md §7).

Textual-free. Each function runs in a thread worker of the Depth view, opens the store
itself and returns a typed report: the gap of every layer (`mgap gap --layers`) and the
layers × layers linear CKA (`mgap cka A@all B@all`). The studies are imported when first
called, so the TUI starts without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mgap.engine.reports.depth import DepthGapReport
    from mgap.engine.reports.layer_matrix import LayerMatrixReport

#: rows the TUI's layers × layers CKA uses at most: above it, a seeded sample of this many
#: rows with a 95 % interval per cell (`mgap cka --sample`), so the view stays interactive
CKA_SAMPLE = 2_000


def layer_sides(path: Path) -> tuple[str, ...]:
    """The sides ("image", "text") of `path` that hold per-layer states."""
    from mgap.store import open_store

    return tuple(sorted(open_store(path).layer_sets))


def depth_gap(path: Path) -> DepthGapReport:
    """`mgap gap STORE --layers`: lens layers when stored, else raw."""
    from mgap.engine.studies.gap_layers import gap_layers_report
    from mgap.store import open_store

    return gap_layers_report(open_store(path))


def cka_refs(
    current: Path, current_sides: Sequence[str], other: Path | None, other_sides: Sequence[str]
) -> tuple[str, str]:
    """The two REFs of the heatmap: two stores with layers, the first one's image side (or
    its only side) against the second one's text side (or its only side); else the current
    store's image@all against its text@all (a one-sided store: that side against itself)."""
    if other is not None and current_sides and other_sides:
        side_a = "image" if "image" in current_sides else current_sides[0]
        side_b = "text" if "text" in other_sides else other_sides[0]
        return f"{current}:{side_a}@all", f"{other}:{side_b}@all"
    side_a = "image" if "image" in current_sides else current_sides[0]
    side_b = "text" if "text" in current_sides else current_sides[0]
    return f"{current}:{side_a}@all", f"{current}:{side_b}@all"


def depth_cka(ref_a: str, ref_b: str) -> LayerMatrixReport:
    """`mgap cka REF_A REF_B --sample CKA_SAMPLE`: linear CKA, every layer of A with every
    layer of B (exact at or below CKA_SAMPLE shared rows)."""
    from mgap.engine.studies.layer_align import layer_cka_report

    return layer_cka_report(ref_a, ref_b, kernel="linear", sample=CKA_SAMPLE)
