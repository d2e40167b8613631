"""A store must hold its own bytes: no external storage, no external or soft links.

HDF5 lets a dataset keep its raw data in another file (external storage), lets a name
point into another file (external link) or elsewhere in this one (soft link), and lets a
virtual dataset map other files. A crafted store could then make a resume overwrite, or
`export` read, any file the user can reach. Readers and writers walk the file first and
refuse such a store. Virtual datasets are accepted only when every source is this file
or a sibling shard named `<store name>.<anything>.h5` in the store's own directory.
"""

from __future__ import annotations

from pathlib import Path

import h5py


def _shard_ok(source: str, store_path: Path) -> bool:
    if source == ".":
        return True
    name = Path(source)
    if (
        name.name != source
        or not source.startswith(store_path.name + ".")
        or not source.endswith(".h5")
    ):
        return False
    shard = store_path.parent / source
    return shard.is_file() and not shard.is_symlink()


def _dataset_problems(ds: h5py.Dataset, where: str, store_path: Path) -> list[str]:
    problems = []
    if ds.id.get_create_plist().get_external_count() > 0:
        problems.append(f"{where} keeps its data in an external file")
    if ds.is_virtual:
        for source in ds.virtual_sources():
            if not _shard_ok(source.file_name, store_path):
                problems.append(f"{where} is a virtual dataset reading {source.file_name!r}")
    return problems


def containment_problems(f: h5py.File, store_path: str | Path) -> list[str]:
    """Every link or dataset of `f` that reaches outside the store; [] when self-contained."""
    store_path = Path(store_path)
    problems: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[h5py.Group, str]] = [(f, "")]
    while stack:
        group, prefix = stack.pop()
        for name in group:
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                problems.append(f"{where} is an external link to {link.filename!r}")
                continue
            if isinstance(link, h5py.SoftLink):
                problems.append(f"{where} is a soft link to {link.path!r}")
                continue
            obj = group[name]
            addr = h5py.h5o.get_info(obj.id).addr
            if addr in seen:
                continue
            seen.add(addr)
            if isinstance(obj, h5py.Group):
                stack.append((obj, where))
            elif isinstance(obj, h5py.Dataset):
                problems.extend(_dataset_problems(obj, where, store_path))
    return problems
