"""The gap experiments on a store: "Mind the Gap"'s shift along the gap vector and "Two
Effects, One Trigger"'s dimension ablation (the arithmetic is
`mgap.engine.measures.experiments`)."""

from __future__ import annotations

from collections.abc import Sequence

from mgap.core.errors import UsageError
from mgap.engine.measures.experiments import ablate_dims, gap_shift
from mgap.engine.reports.analysis import AblateReport, AblateStep, ShiftReport, ShiftStep
from mgap.engine.studies.pairs import store_header, store_pairs
from mgap.engine.studies.retrieval import recall
from mgap.store import Store


def _step(cls: type[ShiftStep] | type[AblateStep], row: dict, **named) -> ShiftStep | AblateStep:
    """One step of an experiment's measure as its report type."""
    plain = {k: v for k, v in row.items() if k not in ("lambda", "i2t", "t2i")}
    return cls.build(**named, **plain, i2t=recall(row["i2t"]), t2i=recall(row["t2i"]))


def shift_report(store: Store, lambdas: Sequence[float], logit_scale: float) -> ShiftReport:
    """Gap, retrieval and the InfoNCE loss at `logit_scale` after each shift λ."""
    X, Y, index = store_pairs(store, what="the shift experiment")
    rows = gap_shift(X, Y, index, lambdas, logit_scale=logit_scale)
    return ShiftReport(
        **store_header(store),
        logit_scale=logit_scale,
        steps=[_step(ShiftStep, row, lam=row["lambda"]) for row in rows],
    )


def ablate_report(store: Store, k_max: int) -> AblateReport:
    """Gap and retrieval after dropping the top k = 0..k_max gap dimensions."""
    X, Y, index = store_pairs(store, what="the ablation experiment")
    if k_max >= X.shape[1]:
        raise UsageError(f"--k-max {k_max} must be below the embedding dim {X.shape[1]}")
    rows = ablate_dims(X, Y, index, k_max)
    return AblateReport(**store_header(store), steps=[_step(AblateStep, row) for row in rows])
