"""Which images `mgap compare` measures every store on, decided from each store's dataset
and image ids alone, so that the cached path (`compare_cache.py`) decides it exactly as
the path that opens the stores does (docs/design.md §7)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mgap.core.errors import UsageError

MIXED = "mixed datasets: each store on all of its own images"
ALL = "every store holds exactly the shared image ids: all rows"
SUBSET = "the image ids all stores share (and their captions)"


def common_ids(
    datasets: list[str], id_lists: list[list[str]], allow_mixed: bool
) -> set[str] | None:
    """The image ids every store holds, or None (allow_mixed on different datasets)."""
    names = sorted(set(datasets))
    if len(names) > 1:
        if allow_mixed:
            return None
        raise UsageError(
            f"the stores are on different datasets ({', '.join(repr(d) for d in names)})",
            hint="compare stores of one dataset, or add --allow-mixed (each on its own images)",
        )
    first = id_lists[0]
    common = set(first)
    for ids in id_lists[1:]:
        if ids != first:  # stores of one dataset mostly list the same ids: skip the sets
            common &= set(ids)
    if not common:
        raise UsageError(
            "the stores share no image ids, so there are no common images to compare on",
            hint="compare stores extracted from the same images (same dataset and split)",
        )
    return common


@dataclass(frozen=True)
class Scope:
    """The compared images: `ids` in the first store's order, or None when every store is
    measured on all of its own rows."""

    common: set[str] | None
    text: str
    ids: list[str] | None

    @property
    def key(self) -> str:
        """What a cached row on this scope is keyed by: "all", or a digest of the ids."""
        if self.ids is None:
            return "all"
        return hashlib.sha1("\n".join(self.ids).encode("utf-8")).hexdigest()[:16]


def plan_scope(datasets: list[str], id_lists: list[list[str]], allow_mixed: bool) -> Scope:
    """The scope of a comparison of stores with these datasets and (counted) image ids."""
    common = common_ids(datasets, id_lists, allow_mixed)
    if common is None:
        return Scope(common=None, text=MIXED, ids=None)
    if all(len(ids) == len(common) for ids in id_lists):
        return Scope(common=common, text=ALL, ids=None)
    ids = [i for i in dict.fromkeys(id_lists[0]) if i in common]
    return Scope(common=common, text=SUBSET, ids=ids)
