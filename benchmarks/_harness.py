"""One timing protocol for every benchmark: both sides get the same repeats and statistic.

A ratio is only honest when mgap and its baseline are measured the same way in the same
process, so every benchmark times through `measure` and prints through `report`:
the median of N runs, with min and max beside it.

    from _harness import measure, report
    ours = measure(lambda: mgap_fn(X), repeats=3)
    theirs = measure(lambda: peer_fn(X), repeats=3)
    report("linear CKA", ours, theirs)   # mgap 0.41 s · baseline 3.20 s · ratio 7.8×
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timing:
    """Wall-clock seconds of each run, and the last run's return value (for equality checks)."""

    seconds: list[float] = field(default_factory=list)
    value: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> str:
        return f"min {min(self.seconds):.3g} · max {max(self.seconds):.3g} · n={len(self.seconds)}"


def measure(fn: Callable[[], Any], repeats: int = 3, warmup: int = 0) -> Timing:
    """Run `fn` warmup + repeats times; keep the timings of the last `repeats` runs."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    timing = Timing()
    for i in range(warmup + repeats):
        start = time.perf_counter()
        timing.value = fn()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            timing.seconds.append(elapsed)
    return timing


def report(label: str, ours: Timing, baseline: Timing, baseline_name: str = "baseline") -> float:
    """Print `label: mgap X s · baseline Y s · ratio Z×` (Z > 1: mgap is faster); return Z."""
    if len(ours.seconds) != len(baseline.seconds):
        raise ValueError("both sides must be timed with the same number of repeats")
    ratio = baseline.median / ours.median
    print(
        f"{label}: mgap {ours.median:.3f} s · {baseline_name} {baseline.median:.3f} s · "
        f"ratio {ratio:.2f}×   (median; mgap {ours.spread}; {baseline_name} {baseline.spread})",
        flush=True,
    )
    return ratio
