"""Per-group results with bootstrap intervals and the worst/best comparison (`--groups`).

Each row carries `grouping`, `group`, `n` (images) and the same metric keys as the command's
ungrouped `--json` document, plus `ci` (percentile bootstrap interval per metric, images
resampled with their captions) and `small` (fewer than `min_n` images: reported, never
ranked). Per grouping and headline metric, `summary` names the worst and best ranked
groups, the best − worst difference (absolute) and the worst/best ratio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mgap.engine.measures.additive import (
    Additive,
    bootstrap_ci,
    gap_additive,
    retrieval_additive,
    zeroshot_additive,
)
from mgap.engine.measures.retrieval import Ranks, summarise_ranks
from mgap.engine.measures.scores import Score
from mgap.engine.reports.base import declared, json_key
from mgap.engine.reports.groups import (
    GroupRow,
    GroupsMissing,
    GroupsReport,
    GroupSummary,
    RankedGroup,
)
from mgap.engine.reports.recall import Recall
from mgap.engine.studies.groupings import Grouping, MissingRows
from mgap.engine.studies.pairs import store_pairs
from mgap.engine.studies.scores import store_score
from mgap.engine.studies.zeroshot import zero_shot_inputs
from mgap.store import Store


@dataclass(frozen=True)
class GroupOptions:
    min_n: int = 20
    bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95


#: (metric key, higher is better) ranked per grouping, per command
GAP_HEADLINES = (("l2m", False), ("rmg", False), ("mean_paired_cosine", True))
RETRIEVAL_HEADLINES = (("i2t.R@1", True), ("t2i.R@1", True))
ZEROSHOT_HEADLINES = (("accuracy", True),)

#: count keys: reported, never given an interval
COUNT_KEYS = {"n", "n_images", "n_texts", "i2t.n", "t2i.n"}

#: GroupRow field name of each JSON key a row writes (`i2t_R@1` -> `i2t_r1`)
FIELD = {json_key(f): f.name for f in declared(GroupRow)}


@dataclass(frozen=True)
class GroupPoint:
    """One group's images (`mask`), metrics with each image weighted once, and intervals."""

    grouping: str
    group: str
    mask: np.ndarray
    point: dict[str, float | None]
    ci: dict[str, list[float | None]]

    @property
    def n(self) -> int:
        return int(self.mask.sum())


def group_points(
    groupings: Sequence[Grouping], additive: Additive, options: GroupOptions
) -> Iterator[GroupPoint]:
    """Per (grouping, group): the additive's point values and bootstrap intervals (count keys
    get none)."""
    for grouping in groupings:
        for g, (group, mask) in enumerate(grouping.groups()):
            part = additive.take(mask)
            ci = bootstrap_ci(part, options.bootstrap, options.seed + g, options.level)
            kept = {k: v for k, v in ci.items() if k not in COUNT_KEYS}
            yield GroupPoint(grouping.name, group, mask, part.point(), kept)


def group_row(
    p: GroupPoint,
    n: int,
    values: dict[str, Any],
    min_n: int,
    before: dict[str, Any] | None = None,
    **after: Any,
) -> GroupRow:
    """A row: `before` (robustness: the setting), which group, `n`, the metric `values` (by
    JSON key, in document order), `ci`, `small` (fewer than `min_n` images: never ranked),
    then `after` (by field name)."""
    metrics = {FIELD[k]: v for k, v in values.items()}
    head = {**(before or {}), "grouping": p.grouping, "group": p.group, "n": n}
    return GroupRow.build(**head, **metrics, ci=p.ci, small=n < min_n, **after)


def summarise(
    rows: Sequence[GroupRow],
    headlines: Sequence[tuple[str, bool]],
    by: Sequence[str] = ("grouping",),
) -> list[GroupSummary]:
    """Worst and best ranked group per grouping (and any other `by` field) and headline metric."""
    out = []
    keys = list(dict.fromkeys(tuple(getattr(r, b) for b in by) for r in rows))  # in row order
    for key in keys:
        members = [r for r in rows if tuple(getattr(r, b) for b in by) == key]
        for metric, higher_is_better in headlines:
            ranked = [
                (float(v), r.group)
                for r in members
                if not r.small and (v := r.value(metric)) is not None
            ]
            head = dict(zip(by, key, strict=True))
            counts = {"n_ranked": len(ranked), "n_small": sum(r.small for r in members)}
            extremes = _extremes(ranked, higher_is_better)
            out.append(
                GroupSummary.build(
                    **head, metric=metric, higher_is_better=higher_is_better, **counts, **extremes
                )
            )
    return out


def _extremes(ranked: list[tuple[float, str]], higher_is_better: bool) -> dict[str, Any]:
    """worst, best, difference and ratio of the ranked (value, group) pairs (none if empty)."""
    if not ranked:
        return {}
    ranked = sorted(ranked, reverse=higher_is_better)
    best, worst = ranked[0], ranked[-1]
    return {
        "worst": RankedGroup.build(group=worst[1], value=worst[0]),
        "best": RankedGroup.build(group=best[1], value=best[0]),
        "difference": abs(best[0] - worst[0]),
        "ratio": worst[0] / best[0] if best[0] != 0 else None,
    }


def groups_document(
    rows: list[GroupRow],
    headlines: Sequence[tuple[str, bool]],
    options: GroupOptions,
    missing: Sequence[MissingRows],
    by: Sequence[str] = ("grouping",),
) -> GroupsReport:
    """The `groups` part of a report: settings, rows, summary and CSV coverage."""
    return GroupsReport.build(
        **asdict(options),
        ci=f"{options.level:.0%} percentile bootstrap over images (captions follow)",
        rows=rows,
        summary=summarise(rows, headlines, by),
        missing=[GroupsMissing.build(**m.to_dict()) for m in missing],
    )


# ---- the three analysis commands -------------------------------------------------------------
def gap_groups(
    X: np.ndarray,
    Y: np.ndarray,
    index: np.ndarray,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
) -> GroupsReport:
    rows = []
    for p in group_points(groupings, gap_additive(X, Y, index), options):
        counts = {k: int(p.point[k]) for k in ("n_images", "n_texts")}
        values = {"dim": X.shape[1], **p.point, **counts}
        rows.append(group_row(p, p.n, values, options.min_n))
    return groups_document(rows, GAP_HEADLINES, options, missing)


def _recall(point: dict[str, float | None], side: str, median_rank: float | None) -> Recall:
    """One side of a retrieval row: the additive's R@k, mean rank and n, the exact median."""
    values = {k.partition(".")[2]: v for k, v in point.items() if k.startswith(side + ".")}
    rest = {"mean_rank": values["mean_rank"], "n": int(values["n"])}
    recall = {"r1": values["R@1"], "r5": values["R@5"], "r10": values["R@10"]}
    return Recall.build(**recall, **rest, median_rank=median_rank)


def retrieval_groups(
    i2t: Ranks,
    t2i: Ranks,
    index: np.ndarray,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
) -> GroupsReport:
    """Queries of each group, ranked against the whole gallery (as `--by-category`)."""
    rows = []
    for p in group_points(groupings, retrieval_additive(i2t, t2i, index), options):
        medians = {
            "i2t": summarise_ranks(i2t.subset(p.mask))["median_rank"],
            "t2i": summarise_ranks(t2i.subset(p.mask[index]))["median_rank"],
        }
        values = {side: _recall(p.point, side, medians[side]) for side in ("i2t", "t2i")}
        rows.append(group_row(p, p.n, values, options.min_n))
    return groups_document(rows, RETRIEVAL_HEADLINES, options, missing)


def zeroshot_groups(
    X: np.ndarray,
    class_embeddings: np.ndarray,
    truth: np.ndarray,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
    score: Score | None = None,
) -> GroupsReport:
    """`n` of a zero-shot row counts the group's labelled images."""
    rows = []
    for p in group_points(groupings, zeroshot_additive(X, class_embeddings, truth, score), options):
        values = {k: v for k, v in p.point.items() if k != "n"}
        rows.append(group_row(p, int(p.point["n"]), values, options.min_n))
    return groups_document(rows, ZEROSHOT_HEADLINES, options, missing)


# ---- from a store ----------------------------------------------------------------------------
def store_groups(
    store: Store,
    command: str,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
    *,
    captions: str = "all",
    label_set: str = "category",
    score: str | None = None,
) -> GroupsReport:
    """The `groups` entry of `mgap gap|zeroshot --groups ...` for one store (`retrieval`
    builds it from the ranks its report already computed, see `retrieval_groups`)."""
    if command == "zeroshot":
        _, class_embeddings, truth = zero_shot_inputs(store, label_set)
        X = store.image_embeddings()
        chosen = store_score(store, score)
        return zeroshot_groups(X, class_embeddings, truth, groupings, options, missing, chosen)
    if command != "gap":
        raise ValueError(f"store_groups covers gap and zeroshot, not {command!r}")
    X, Y, index = store_pairs(store, captions=captions, what=command)
    return gap_groups(X, Y, index, groupings, options, missing)
