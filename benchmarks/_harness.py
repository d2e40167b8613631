"""One timing protocol for every benchmark: both sides get the same repeats and statistic.

A ratio is only honest when mgap and its baseline are measured the same way in the same
process, so every benchmark times through `measure` and prints through `report`:
the median of N runs, with min and max beside it.

    from _harness import measure, report
    ours = measure(lambda: mgap_fn(X), repeats=3)
    theirs = measure(lambda: peer_fn(X), repeats=3)
    report("linear CKA", ours, theirs)   # mgap 0.41 s · baseline 3.20 s · ratio 7.8×

On a shared machine, `measure_interleaved([ours_fn, theirs_fn])` alternates the sides.
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


def measure(
    fn: Callable[[], Any],
    repeats: int = 3,
    warmup: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Run `fn` warmup + repeats times; keep the timings of the last `repeats` runs.

    `clock=time.process_time` times this process's CPU seconds instead of wall-clock: for
    single-threaded work on a shared machine it is the work itself, not the wait for a core.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    timing = Timing()
    for i in range(warmup + repeats):
        start = clock()
        timing.value = fn()
        elapsed = clock() - start
        if i >= warmup:
            timing.seconds.append(elapsed)
    return timing


def measure_interleaved(
    fns: list[Callable[[], Any]],
    repeats: int = 3,
    warmup: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Timing]:
    """`measure` for several sides, run in turn (A, B, A, B, ...): a load change from other
    processes then falls on every side alike instead of on whichever ran during it."""
    timings = [Timing() for _ in fns]
    for i in range(warmup + repeats):
        for fn, timing in zip(fns, timings, strict=True):
            once = measure(fn, repeats=1, clock=clock)
            timing.value = once.value
            if i >= warmup:
                timing.seconds.extend(once.seconds)
    return timings


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
