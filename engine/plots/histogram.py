"""Side-by-side text histograms (image | text) for 80-column terminals, CLI and TUI alike.

Used for the distance-from-origin histograms of Lorentz stores: one line per bin, the bin's
range, then a bar per modality scaled to the largest count of either side, so the two
modalities' shapes can be compared at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence

#: eighths of a cell, for bars with sub-character resolution
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def _bar(count: int, top: int, width: int, ascii: bool) -> str:
    if top <= 0 or count <= 0:
        return " " * width
    eighths = max(1, round(8 * width * count / top))
    full, part = divmod(eighths, 8)
    if ascii:
        text = "#" * (full + (1 if part >= 4 else 0))
    else:
        text = "█" * full + (_EIGHTHS[part] if part else "")
    return text[:width].ljust(width)


def histogram_lines(
    edges: Sequence[float],
    sides: dict[str, Sequence[int]],
    *,
    width: int = 78,
    ascii: bool = False,
) -> list[str]:
    """Lines `lo–hi │ bar │ bar` with a header naming the sides; fits `width` columns."""
    names = list(sides)
    label_w = 13
    bar_w = max(4, (width - label_w - 3 * len(names)) // max(len(names), 1))
    top = max((max(counts, default=0) for counts in sides.values()), default=0)
    sep = "|" if ascii else "│"
    dash = "-" if ascii else "–"
    header = " " * label_w + "".join(f" {sep} " + n[:bar_w].ljust(bar_w) for n in names)
    lines = [header.rstrip()]
    for i in range(len(edges) - 1):
        label = f"{edges[i]:.2f}{dash}{edges[i + 1]:.2f}".rjust(label_w)
        bars = "".join(f" {sep} " + _bar(int(sides[n][i]), top, bar_w, ascii) for n in names)
        lines.append((label + bars).rstrip())
    return lines


#: sparkline levels: empty, then eight heights
_LEVELS = " ▁▂▃▄▅▆▇█"
_ASCII_LEVELS = " .:-=+*#@"


def sparkline(counts: Sequence[int], top: int | None = None, ascii: bool = False) -> str:
    """One character per bin, its height the bin's share of `top` (default: the largest)."""
    levels = _ASCII_LEVELS if ascii else _LEVELS
    top = max(counts, default=0) if top is None else top
    if top <= 0:
        return " " * len(counts)
    return "".join(levels[0] if n <= 0 else levels[max(1, round(8 * n / top))] for n in counts)
