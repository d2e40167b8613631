"""`mgap compare --correlate`: every gap metric against every performance metric across
the compared stores (docs/design.md §7); the statistics are
`mgap.engine.measures.correlation`'s."""

from __future__ import annotations

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.measures.correlation import correlate
from mgap.engine.reports.compare import (
    CompareRow,
    Correlation,
    CorrelationBlock,
    CorrelationValue,
)
from mgap.engine.studies.compare import GAP_METRICS, METRICS, MODEL_METRICS, PERFORMANCE_METRICS

#: fewer stores than this give no usable rank correlation
MIN_STORES = 4
#: the x side: the gap, and the model-side columns (logit scale, checkpoint step)
X_METRICS = GAP_METRICS + MODEL_METRICS
DEFINITION = (
    "Spearman rho (Pearson of average ranks), Kendall tau-b, Pearson r across stores; "
    "95% percentile interval over B resamples of the stores with replacement; two-sided "
    "permutation p = (1 + #{|null| >= |observed|}) / (1 + N), y permuted against x"
)


def check_zoo(rows: list[CompareRow]) -> None:
    if len(rows) < MIN_STORES:
        raise UsageError(
            f"--correlate needs at least {MIN_STORES} stores, got {len(rows)}",
            hint="give more STOREs (one per model or checkpoint)",
        )


def complete(rows: list[CompareRow], name: str) -> bool:
    """Whether every store has a finite value of the column `name`."""
    values = [getattr(r, name) for r in rows]
    return all(v is not None and np.isfinite(v) for v in values)


def column(rows: list[CompareRow], name: str) -> np.ndarray:
    return np.asarray([getattr(r, name) for r in rows], dtype=np.float64)


def correlation(
    rows: list[CompareRow], x: str, y: str, boot: int, perms: int, seed: int
) -> Correlation:
    """One (x, y) pair across the stores: each method's coefficient as its report part."""
    methods = correlate(column(rows, x), column(rows, y), boot=boot, perms=perms, seed=seed)
    return Correlation.build(
        x=x,
        y=y,
        n=len(rows),
        **{name: CorrelationValue.build(**value) for name, value in methods.items()},
    )


def correlation_block(
    rows: list[CompareRow], *, boot: int = 1000, perms: int = 1000, seed: int = 0
) -> CorrelationBlock:
    """The `correlation` object: one entry per (x, y) pair both complete over the stores;
    metrics some store lacks are listed in `skipped`."""
    check_zoo(rows)
    if boot < 1 or perms < 1:
        raise UsageError("--bootstrap and --permutations must be at least 1")
    xs = [m for m in X_METRICS if complete(rows, m)]
    ys = [m for m in PERFORMANCE_METRICS if complete(rows, m)]
    return CorrelationBlock.build(
        bootstrap=int(boot),
        permutations=int(perms),
        seed=int(seed),
        definition=DEFINITION,
        skipped=[m for m in (*X_METRICS, *PERFORMANCE_METRICS) if m not in (*xs, *ys)],
        pairs=[correlation(rows, x, y, boot, perms, seed) for x in xs for y in ys],
    )


def scatter_pair(rows: list[CompareRow], x: str | None, y: str | None) -> tuple[str, str]:
    """The (x, y) columns to draw: as asked, else L2M against the first complete
    performance column."""
    x = x or "l2m"
    y = y or next((m for m in ("zeroshot_top1", *PERFORMANCE_METRICS) if complete(rows, m)), None)
    for name in (x, y):
        if name not in METRICS:
            raise UsageError(f"--x/--y must be a column, got {name!r}", hint=", ".join(METRICS))
        if not complete(rows, name):
            raise UsageError(f"{name} is missing for some store, so it cannot be drawn")
    return x, y
