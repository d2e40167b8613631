"""A table cell shaded along a colour ramp, for scores in [0, 1] (CKA, k-NN, matching).

Rich drops the colours where colour is off (NO_COLOR, a pipe), leaving the number.
"""

from __future__ import annotations

import math

#: a dark-to-bright ramp for values in [0, 1] (viridis stops)
RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def shade_cell(value: float | None, digits: int = 3):
    """A table cell whose background follows the value on RAMP."""
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    if value is None:
        return Text("-")
    if not math.isfinite(value):
        return Text("nan")
    t = min(max(value, 0.0), 1.0) * (len(RAMP) - 1)
    lo = min(int(t), len(RAMP) - 2)
    w = t - lo
    rgb = [round(a + (b - a) * w) for a, b in zip(RAMP[lo], RAMP[lo + 1], strict=True)]
    ink = "black" if t > 2.0 else "white"
    return Text(f"{value:.{digits}f}", style=Style(color=ink, bgcolor=Color.from_rgb(*rgb)))
