"""Per-group results with bootstrap intervals and the worst/best comparison (`--groups`).

Each row carries `grouping`, `group`, `n` (images) and the same metric keys as the command's
ungrouped `--json` document, plus `ci` (percentile bootstrap interval per metric, images
resampled with their captions) and `small` (fewer than `min_n` images: reported, never
ranked). Per grouping and headline metric, `summary` names the worst and best ranked
groups, the best − worst difference (absolute) and the worst/best ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

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


def nest(flat: dict) -> dict:
    """{"i2t.R@1": v} -> {"i2t": {"R@1": v}}, matching the ungrouped documents."""
    out: dict = {}
    for key, value in flat.items():
        head, dot, tail = key.partition(".")
        if dot:
            out.setdefault(head, {})[tail] = value
        else:
            out[key] = value
    return out


def _value(row: dict, key: str) -> float | None:
    head, dot, tail = key.partition(".")
    value = row[head][tail] if dot else row[key]
    return None if value is None else float(value)


def group_rows(
    groupings: Sequence[Grouping],
    additive: Additive,
    options: GroupOptions,
    *,
    extra: Callable[[np.ndarray], dict] | None = None,
    fixed: dict | None = None,
) -> list[dict]:
    """One row per (grouping, group). `extra(mask)` adds non-additive point values (e.g. the
    median rank); `fixed` adds keys shared by every row (e.g. `dim`)."""
    rows = []
    for grouping in groupings:
        for g, (group, mask) in enumerate(grouping.groups()):
            part = additive.take(mask)
            n = int(mask.sum())
            point = part.point()
            ci = bootstrap_ci(part, options.bootstrap, options.seed + g, options.level)
            row = {
                "grouping": grouping.name,
                "group": group,
                "n": n,
                **(fixed or {}),
                **nest(point),
                "ci": {k: v for k, v in ci.items() if k not in COUNT_KEYS},
            }
            row["n"] = int(row["n"])  # zero-shot: its `n` counts the labelled images
            row["small"] = row["n"] < options.min_n
            for key, value in (extra(mask) if extra else {}).items():
                if isinstance(value, dict):
                    row.setdefault(key, {}).update(value)
                else:
                    row[key] = value
            rows.append(row)
    return rows


def summarise(
    rows: Sequence[dict], headlines: Sequence[tuple[str, bool]], by: Sequence[str] = ("grouping",)
) -> list[dict]:
    """Worst and best ranked group per grouping (and any other `by` key) and headline metric."""
    out = []
    keys = list(dict.fromkeys(tuple(r[b] for b in by) for r in rows))  # in row order
    for key in keys:
        members = [r for r in rows if tuple(r[b] for b in by) == key]
        for metric, higher_is_better in headlines:
            ranked = [
                (v, r["group"])
                for r in members
                if not r["small"] and (v := _value(r, metric)) is not None
            ]
            entry = {
                **dict(zip(by, key, strict=True)),
                "metric": metric,
                "higher_is_better": higher_is_better,
                "n_ranked": len(ranked),
                "n_small": sum(r["small"] for r in members),
            }
            if ranked:
                ranked.sort(reverse=higher_is_better)
                best, worst = ranked[0], ranked[-1]
                entry.update(
                    worst={"group": worst[1], "value": worst[0]},
                    best={"group": best[1], "value": best[0]},
                    difference=abs(best[0] - worst[0]),
                    ratio=worst[0] / best[0] if best[0] != 0 else None,
                )
            out.append(entry)
    return out


def groups_document(
    rows: list[dict],
    headlines: Sequence[tuple[str, bool]],
    options: GroupOptions,
    missing: Sequence[MissingRows],
    by: Sequence[str] = ("grouping",),
) -> dict:
    """The `groups` entry of a report: settings, rows, summary and CSV coverage."""
    return {
        **asdict(options),
        "ci": f"{options.level:.0%} percentile bootstrap over images (captions follow)",
        "rows": rows,
        "summary": summarise(rows, headlines, by),
        "missing": [m.to_dict() for m in missing],
    }


# ---- the three analysis commands -------------------------------------------------------------
def gap_groups(
    X: np.ndarray,
    Y: np.ndarray,
    index: np.ndarray,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
) -> dict:
    rows = group_rows(groupings, gap_additive(X, Y, index), options, fixed={"dim": X.shape[1]})
    for row in rows:
        row["n_images"], row["n_texts"] = int(row["n_images"]), int(row["n_texts"])
    return groups_document(rows, GAP_HEADLINES, options, missing)


def retrieval_groups(
    i2t: Ranks,
    t2i: Ranks,
    index: np.ndarray,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
) -> dict:
    """Queries of each group, ranked against the whole gallery (as `--by-category`)."""

    def exact(mask: np.ndarray) -> dict:
        return {
            "i2t": summarise_ranks(i2t.subset(mask)),
            "t2i": summarise_ranks(t2i.subset(mask[index])),
        }

    def extra(mask: np.ndarray) -> dict:
        full = exact(mask)
        return {side: {"median_rank": full[side]["median_rank"]} for side in ("i2t", "t2i")}

    rows = group_rows(groupings, retrieval_additive(i2t, t2i, index), options, extra=extra)
    for row in rows:
        for side in ("i2t", "t2i"):
            row[side]["n"] = int(row[side]["n"])
    return groups_document(rows, RETRIEVAL_HEADLINES, options, missing)


def zeroshot_groups(
    X: np.ndarray,
    class_embeddings: np.ndarray,
    truth: np.ndarray,
    groupings: Sequence[Grouping],
    options: GroupOptions,
    missing: Sequence[MissingRows] = (),
    score: Score | None = None,
) -> dict:
    rows = group_rows(groupings, zeroshot_additive(X, class_embeddings, truth, score), options)
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
) -> dict:
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
