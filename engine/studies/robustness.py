"""`mgap robustness`: how each stored perturbation moves the model's results.

Per setting (the clean side first, then each perturbation as named at extraction): zero-shot
top-1/top-5 and error (1 − top-1) on the store's class prompts; the mean cosine of true
(image, caption) pairs; the mean cosine between each image's clean and perturbed
embedding; L2M and RMG; i2t and t2i R@1; and each value's change from clean. The text
side and the prompts are the same for every setting (embedded once); only the image side
changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgap.core.errors import StoreError
from mgap.engine.measures.additive import (
    Additive,
    cosine_additive,
    gap_additive,
    merge,
    retrieval_additive,
    zeroshot_additive,
)
from mgap.engine.measures.retrieval import score_ranks
from mgap.engine.measures.scores import Score
from mgap.engine.reports.base import declared, json_key
from mgap.engine.reports.groups import GroupRow, RobustnessValues
from mgap.engine.reports.studies import RobustnessReport, RobustnessSetting
from mgap.engine.studies.group_report import (
    FIELD,
    GroupOptions,
    group_points,
    group_row,
    groups_document,
)
from mgap.engine.studies.groupings import Grouping, MissingRows
from mgap.engine.studies.pairs import store_header, store_pairs
from mgap.engine.studies.scores import store_score
from mgap.engine.studies.zeroshot import zero_shot_inputs
from mgap.store import Store
from mgap.store.schema import CLEAN

#: metric keys of every setting row, in table order
METRICS = (
    "top1",
    "top5",
    "error",
    "mean_paired_cosine",
    "clean_cosine",
    "l2m",
    "rmg",
    "i2t_R@1",
    "t2i_R@1",
)

_RENAME = {
    "zs/accuracy": "top1",
    "zs/top5_accuracy": "top5",
    "gap/mean_paired_cosine": "mean_paired_cosine",
    "cos/cosine": "clean_cosine",
    "gap/l2m": "l2m",
    "gap/rmg": "rmg",
    "ret/i2t.R@1": "i2t_R@1",
    "ret/t2i.R@1": "t2i_R@1",
    "gap/n_images": "n_images",
}

#: ranked per grouping and setting when --groups is given (the study's fairness measure)
HEADLINES = (("top1", True), ("l2m", False))


def _side_additive(
    X: np.ndarray,
    X_clean: np.ndarray,
    Y: np.ndarray,
    index: np.ndarray,
    zeroshot: tuple[np.ndarray, np.ndarray] | None,
    score: Score | None = None,
) -> Additive:
    i2t, t2i = score_ranks(X, Y, index, score or Score())
    parts = {
        "gap": gap_additive(X, Y, index),
        "ret": retrieval_additive(i2t, t2i, index, ks=(1,)),
        "cos": cosine_additive(X, X_clean),
    }
    if zeroshot is not None:
        parts["zs"] = zeroshot_additive(X, *zeroshot, score)
    merged = merge(parts, _RENAME)
    finish = merged.finish

    def with_error(sums):
        out = finish(sums)
        if "top1" in out:
            out["error"] = 1.0 - out["top1"]
        return out

    return Additive(merged.columns, with_error)


def _complete(values: dict) -> dict:
    """Every metric key present (None where the store cannot give it, e.g. no prompts)."""
    return {key: values.get(key) for key in ("n_images", *METRICS)}


def _deltas(row: dict, clean: dict) -> dict:
    return {
        key: (row[key] - clean[key] if row[key] is not None and clean[key] is not None else None)
        for key in METRICS
    }


def _zeroshot_inputs(store: Store) -> tuple[np.ndarray, np.ndarray] | None:
    if store.prompt_embeddings() is None:
        return None
    _, class_embeddings, truth = zero_shot_inputs(store)
    return class_embeddings, truth


#: (report attribute, metric key) of every setting row's values
FIELDS = tuple((f.name, json_key(f)) for f in declared(RobustnessValues))


def _values(values: dict) -> dict:
    return {name: values[key] for name, key in FIELDS}


def _setting(name: str, point: dict, clean: dict) -> RobustnessSetting:
    delta = RobustnessValues(**_values(_deltas(point, clean)))
    return RobustnessSetting(
        setting=name, n_images=point["n_images"], **_values(point), delta=delta
    )


def _group_rows(
    name: str, additive: Additive, grouping: tuple, clean_groups: dict
) -> list[GroupRow]:
    """The setting's rows per group, each with its change from the clean group."""
    groupings, options = grouping
    rows = []
    for p in group_points(groupings, additive, options):
        values = _complete(p.point)
        values["n_images"] = int(values["n_images"])
        key = (p.grouping, p.group)
        if name == CLEAN:
            clean_groups[key] = values
        delta = RobustnessValues(**_values(_deltas(values, clean_groups[key])))
        point = {k: values[k] for k in p.point}  # the keys the store gives, in their order
        unknown = {FIELD[k]: None for k in values if k not in p.point}  # after the interval
        head = {"setting": name}
        rows.append(group_row(p, p.n, point, options.min_n, head, **unknown, delta=delta))
    return rows


def _check(store: Store) -> None:
    if not store.perturbations:
        raise StoreError(
            f"{store.path.name} has no perturbed image sides",
            hint="extract with --perturb noise:0.05 (repeatable) or --perturb-suite rtml",
        )


def robustness_report(
    store: Store,
    *,
    captions: str = "all",
    groupings: Sequence[Grouping] = (),
    options: GroupOptions | None = None,
    missing: Sequence[MissingRows] = (),
) -> RobustnessReport:
    """The `mgap robustness` report: `settings` rows, clean first, with `delta`."""
    _check(store)
    options = options or GroupOptions()
    X_clean, Y, index = store_pairs(store, captions=captions, what="robustness")
    zeroshot = _zeroshot_inputs(store)
    score = store_score(store)  # Lorentz stores rank by geodesic distance
    sides = [(CLEAN, X_clean)] + [
        (name, store.perturbed_image_embeddings(name)) for name in store.perturbations
    ]
    settings, group_table, clean_groups = [], [], {}
    clean_point: dict = {}
    for name, X in sides:
        additive = _side_additive(X, X_clean, Y, index, zeroshot, score)
        point = _complete(additive.point())
        point["n_images"] = int(point["n_images"])
        clean_point = point if name == CLEAN else clean_point
        settings.append(_setting(name, point, clean_point))
        if groupings:
            group_table += _group_rows(name, additive, (groupings, options), clean_groups)
    optional = {}
    if groupings:
        by = ("grouping", "setting")
        optional["groups"] = groups_document(group_table, HEADLINES, options, missing, by=by)
    return RobustnessReport.build(
        **store_header(store),
        **score.describe(),
        captions=captions,
        n_images=int(X_clean.shape[0]),
        n_texts=int(Y.shape[0]),
        perturb_seed=int(store.attrs.get("perturb_seed", 0) or 0),
        zero_shot="category prompts" if zeroshot is not None else None,
        settings=settings,
        **optional,
    )
