"""`mgap compare --by step`: the stores of one training run ordered by checkpoint step, and
the gap and performance metrics against that step (docs/design.md §7)."""

from __future__ import annotations

from pathlib import Path

from mgap.core.errors import UsageError
from mgap.engine.reports.compare import CompareRow, TrajectoryBlock, TrajectorySeries

#: the lines drawn: gap metrics, then performance (a series every store has, else skipped)
GAP_SERIES = ("l2m", "rmg", "paired_cosine")
PERFORMANCE_SERIES = ("i2t_r1", "t2i_r1", "zeroshot_top1")
BY = ("step",)


def check_steps(steps: dict[str, int | None]) -> None:
    """Refuse (one line) when a store ({path: step}) has no checkpoint step."""
    missing = [Path(path).name for path, step in steps.items() if step is None]
    if missing:
        raise UsageError(
            f"--by step needs every store's checkpoint_step; {missing[0]} has none",
            hint="compare checkpoint stores (the `checkpoint_step` attribute is written at "
            "extraction), or drop --by",
        )


def by_step(rows: list[CompareRow]) -> list[CompareRow]:
    """The rows in step order; a store without a checkpoint step is refused."""
    check_steps({r.store: r.step for r in rows})
    return sorted(rows, key=lambda r: r.step)


def _series(rows: list[CompareRow], metric: str, kind: str) -> TrajectorySeries | None:
    values = [getattr(r, metric) for r in rows]
    if any(v is None for v in values):
        return None
    return TrajectorySeries.build(metric=metric, kind=kind, values=[float(v) for v in values])


def trajectory_block(rows: list[CompareRow], by: str = "step") -> TrajectoryBlock:
    """Every drawn metric against the step (`rows` already in step order, `by_step`)."""
    if by not in BY:
        raise UsageError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    wanted = [(m, "gap") for m in GAP_SERIES] + [(m, "performance") for m in PERFORMANCE_SERIES]
    series = {m: _series(rows, m, kind) for m, kind in wanted}
    return TrajectoryBlock.build(
        by=by,
        steps=[int(r.step) for r in rows],
        labels=[r.model or Path(r.store).name for r in rows],
        skipped=[m for m, s in series.items() if s is None],
        series=[s for s in series.values() if s is not None],
    )
