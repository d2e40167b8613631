"""The gap experiments on a store: "Mind the Gap"'s shift along the gap vector, "Two
Effects, One Trigger"'s dimension ablation, and any registered intervention measured
before and after (`center`). The arithmetic is `mgap.engine.measures.experiments`; the
interventions are `mgap.engine.measures.interventions`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mgap.core.errors import UsageError
from mgap.engine.measures.experiments import (
    ZeroShotTruth,
    ablate_dims,
    before_after,
    compared,
    gap_shift,
    subset,
)
from mgap.engine.measures.interventions import INTERVENTIONS, Rows, unit
from mgap.engine.reports.analysis import AblateReport, AblateStep, ShiftReport, ShiftStep
from mgap.engine.reports.interventions import (
    Deltas,
    GroupBeforeAfter,
    InterventionReport,
    Measured,
)
from mgap.engine.studies.groupings import Grouping
from mgap.engine.studies.pairs import store_header, store_pairs
from mgap.engine.studies.retrieval import recall
from mgap.engine.studies.zeroshot import zero_shot_inputs
from mgap.store import Store
from mgap.store.schema import PROMPT_SET_CATEGORY


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


def _measured(row: dict) -> Measured:
    gap = {k: row[k] for k in ("l2m", "l2i", "mean_paired_cosine", "rmg")}
    top1 = {"zeroshot_top1": row["zeroshot_top1"]} if "zeroshot_top1" in row else {}
    return Measured.build(**gap, i2t=recall(row["i2t"]), t2i=recall(row["t2i"]), **top1)


def _before_after(doc: dict) -> dict:
    """A `before_after` document as the report's typed parts."""
    return {
        "before": _measured(doc["before"]),
        "after": _measured(doc["after"]),
        "delta": Deltas.build(**doc["delta"]),
    }


def _zero_shot_truth(store: Store) -> tuple[np.ndarray | None, ZeroShotTruth | None]:
    """(class prompts, truth) when the store has category prompts, else (None, None)."""
    if PROMPT_SET_CATEGORY not in store.prompt_sets:
        return None, None
    names, prompts, truth = zero_shot_inputs(store)
    return prompts, ZeroShotTruth(list(names), truth)


def _group_parts(
    rows: Rows,
    after: Rows,
    index: np.ndarray,
    classes: ZeroShotTruth | None,
    groupings: Sequence[Grouping],
    min_n: int,
) -> list[GroupBeforeAfter]:
    """Each group's before/after on its images and their captions (the intervention was
    applied to the whole store)."""
    out = []
    for grouping in groupings:
        for label, mask in grouping.groups():
            part, sub_index, truth = subset(rows, index, mask, classes)
            moved, _, _ = subset(after, index, mask)
            n = int(mask.sum())
            out.append(
                GroupBeforeAfter.build(
                    grouping=grouping.name,
                    group=label,
                    n=n,
                    small=n < min_n,
                    **_before_after(compared(part, moved, sub_index, truth)),
                )
            )
    return out


def intervention_report(
    store: Store,
    name: str,
    param: Any = None,
    groupings: Sequence[Grouping] | None = None,
    min_n: int = 20,
) -> InterventionReport:
    """The registered intervention `name` on the store's rows: gap, retrieval and zero-shot
    before and after, with deltas, and per group with `groupings`."""
    if name not in INTERVENTIONS:
        raise UsageError(f"no intervention {name!r}", hint=f"one of {', '.join(INTERVENTIONS)}")
    chosen = INTERVENTIONS[name]
    X, Y, index = store_pairs(store, what=f"the {name} experiment")
    prompts, classes = _zero_shot_truth(store)
    rows = unit(X, Y, prompts)
    after, doc = before_after(chosen, rows, index, param, classes)
    groups = None
    if groupings:
        groups = _group_parts(rows, after, index, classes, groupings, min_n)
    return InterventionReport.build(
        **store_header(store),
        intervention=chosen.name,
        description=chosen.description,
        n_images=int(X.shape[0]),
        n_texts=int(Y.shape[0]),
        **_before_after(doc),
        **({} if groups is None else {"groups": groups}),
    )
