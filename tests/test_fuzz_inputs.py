"""Seeded mutation fuzzing of every file mgap reads (issue 17 item 8).

Four seeds, each mutated at the byte level (flips, cuts, inserts, invalid UTF-8) and at
the structure level (JSON values swapped for null, 1e400, NaN, deep nesting, NUL bytes,
lone surrogates, `a/b` keys; array dtypes, shapes and headers; HDF5 datasets and
attributes replaced or removed):

- COCO annotation JSON -> load_manifest -> a store written block by block;
- CSV / JSONL tables   -> load_manifest -> a store;
- .npy / .npz          -> `mgap import` (the real CLI entry point, in-process);
- store files          -> `mgap verify`, `info`, `export`.

Every case must end as "accepted" or a "clean" one-line error (exit 1 or 2). A catch-all
message (`set MGAP_DEBUG=1`), a traceback, an exception escaping `main()` or a case
running past HANG_S fails the test. Whatever is accepted must pass `verify`. The default
suite runs CASES cases per seed kind; `-m slow` runs SLOW_CASES.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from mgap.cli import main
from mgap.core.errors import MgapError
from mgap.store.verify import verify_store

CASES = 20
SLOW_CASES = 1000
HANG_S = 20
KINDS = ("annotation", "table", "array", "store")
OUTCOMES = ("clean", "accepted", "catch-all", "crash", "hang", "unverified")
CATCH_ALL = "set MGAP_DEBUG=1"


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


# ---- running one case ----------------------------------------------------------------
def run_cli(args: list[str]) -> tuple[int, str]:
    """`mgap ARGS` through the console entry point, in this process; (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["mgap", *args]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, err.getvalue()


def _cli_outcome(args: list[str]) -> str:
    """accepted (exit 0), clean (exit 1/2 with one `mgap: error:` line, or `verify`'s
    problem list, one `STORE: problem` line each), catch-all or crash."""
    code, err = run_cli(args)
    if CATCH_ALL in err:
        return "catch-all"
    if "Traceback" in err or "Exception ignored" in err or code not in (0, 1, 2):
        return "crash"
    if code:
        lines = [line for line in err.splitlines() if line.strip()]
        if args[0] == "verify" and code == 1 and lines and lines[0].startswith(f"{args[1]}: "):
            return "clean" if all(line.startswith(f"{args[1]}: ") for line in lines) else "crash"
        return "clean" if len(lines) == 1 and lines[0].startswith("mgap: error: ") else "crash"
    return "accepted"


def _in_process(case: Callable[[], str]) -> str:
    """Run a case under an alarm; an exception other than MgapError is a catch-all."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        return case()
    except _Hang:
        return "hang"
    except MgapError:
        return "clean"
    except Exception:  # noqa: BLE001 - the fuzzer counts what would reach the catch-all
        return "catch-all"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _guarded(case: Callable[[], str]) -> str:
    """The case in a forked child: a loop inside HDF5's C code cannot be interrupted by a
    Python alarm, so a child still running after HANG_S is killed and counted a hang."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the outcome, never return into pytest
        os.close(read)
        outcome = "crash"
        try:
            outcome = _in_process(case)
        finally:
            os.write(write, outcome.encode())
            os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], HANG_S + 5)
        outcome = (os.read(read, 64).decode() or "crash") if ready else "hang"
    finally:
        os.close(read)
    if outcome == "hang":
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return outcome


# ---- mutations ---------------------------------------------------------------------------
_WEIRD_JSON = [
    "null",
    "1e400",
    "-1e400",
    "NaN",
    "-1",
    "0",
    "4294967297",
    '""',
    '"a/b"',
    '"\\u0000"',
    '"\\ud800"',
    '"' + "x" * 5000 + '"',
    "[]",
    "{}",
    "true",
    "[" * 3000 + "]" * 3000,
    '{"a/b": 1}',
    '"../../etc/passwd"',
]


def mutate_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(raw)
    op = rng.integers(6)
    if not data or op == 0:  # truncate
        return bytes(data[: rng.integers(len(data) + 1)])
    if op == 1:  # flip a few bytes
        for _ in range(rng.integers(1, 8)):
            data[rng.integers(len(data))] ^= int(rng.integers(1, 256))
    elif op == 2:  # insert junk (invalid UTF-8, NUL, quotes)
        junk = rng.choice([b"\xff\xfe", b"\x00", b'"', b",", b"\n", b"\xed\xa0\x80", b"/"])
        at = rng.integers(len(data) + 1)
        data[at:at] = junk * int(rng.integers(1, 4))
    elif op == 3:  # duplicate a chunk
        a = rng.integers(len(data))
        data[a:a] = data[a : a + int(rng.integers(1, 64))]
    elif op == 4:  # delete a chunk
        a = rng.integers(len(data))
        del data[a : a + int(rng.integers(1, 64))]
    else:  # zero a run
        a = rng.integers(len(data))
        data[a : a + int(rng.integers(1, 32))] = b"\x00" * len(data[a : a + 32])
    return bytes(data)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def mutate_json(doc: object, rng: np.random.Generator) -> bytes:
    """Swap one value for a weird one (as raw JSON text), or drop a key, or duplicate."""
    paths = [p for p in _paths(doc) if p]
    path = paths[rng.integers(len(paths))]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    op = rng.integers(4)
    marker = "@@WEIRD@@"
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif op == 1 and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[path[-1]])))
    elif op == 2 and isinstance(parent, dict):
        parent[rng.choice(["a/b", "", "\u0000", "x" * 300])] = parent.pop(path[-1])
    else:
        parent[path[-1]] = marker
    text = json.dumps(doc, allow_nan=True)
    return text.replace(f'"{marker}"', str(rng.choice(_WEIRD_JSON))).encode()


# ---- seeds -----------------------------------------------------------------------------------
def _coco_seed() -> tuple[dict, dict]:
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg"} for i in range(5)]
    captions = [
        {"id": 10 + k, "image_id": 1 + k % 5, "caption": f"a photo number {k}"} for k in range(9)
    ]
    categories = [{"id": 1, "name": "dog", "supercategory": "animal"}, {"id": 2, "name": "cat"}]
    boxes = [
        {"id": 100 + k, "image_id": 1 + k % 5, "category_id": 1 + k % 2, "area": 10.0 + k}
        for k in range(6)
    ]
    return (
        {"images": images, "annotations": captions},
        {"images": images, "annotations": boxes, "categories": categories},
    )


def _write_store_from(manifest, path: Path, rng: np.random.Generator) -> None:
    """What extraction writes for a manifest, with random rows instead of a model."""
    from mgap.store.writer import StoreLayout, create_store

    captions, rows = manifest.captions_and_rows()
    primary, labels = manifest.label_arrays()
    layout = StoreLayout(
        image_ids=[r.id for r in manifest.records],
        image_paths=[r.path for r in manifest.records],
        captions=captions,
        caption_image_row=rows,
        category_names=manifest.category_names,
        supercategories=[manifest.supercategories.get(c, "") for c in manifest.category_names],
        primary=primary,
        labels=labels,
        attributes=manifest.attribute_columns(),
    )
    block = int(rng.integers(1, 5))
    writer = create_store(path, layout, {}, image_dim=4, text_dim=4, block_rows=block)
    n, m = len(layout.image_ids), len(captions)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        writer.write_images(lo, rng.normal(size=(hi - lo, 4)) + 3, np.ones(hi - lo))
    for lo in range(0, m, block):
        hi = min(lo + block, m)
        writer.write_texts(lo, rng.normal(size=(hi - lo, 4)) + 3)
    writer.finish()


def _accept_manifest(kind: str, root: Path, out: Path, rng) -> str:
    from mgap.engine.datasets import load_manifest

    manifest = load_manifest(kind, root, None, None)
    if not manifest.records:
        return "clean"
    _write_store_from(manifest, out, rng)
    return "accepted" if verify_store(out) == [] else "unverified"


def case_annotation(work: Path, rng: np.random.Generator) -> str:
    root = work / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    captions, instances = _coco_seed()
    files = {"captions_val2017.json": captions, "instances_val2017.json": instances}
    target = str(rng.choice(list(files)))
    for name, doc in files.items():
        raw = json.dumps(doc).encode()
        if name == target:
            raw = mutate_json(doc, rng) if rng.random() < 0.6 else mutate_bytes(raw, rng)
        (root / "annotations" / name).write_bytes(raw)
    return _guarded(lambda: _accept_manifest("coco", root, work / "s.h5", rng))


def case_table(work: Path, rng: np.random.Generator) -> str:
    rows = [
        {"image": f"img{i}.jpg", "caption": f"a red thing {i}", "category": "dog", "colour": "red"}
        for i in range(4)
    ]
    if rng.random() < 0.5:
        table = work / "t.csv"
        header = list(rows[0])
        if rng.random() < 0.4:
            header[rng.integers(len(header))] = str(rng.choice(["a/b", "", " ", "x\x00y", "Image"]))
        lines = [",".join(header)] + [",".join(str(v) for v in r.values()) for r in rows]
        raw = ("\n".join(lines) + "\n").encode()
        table.write_bytes(mutate_bytes(raw, rng) if rng.random() < 0.7 else raw)
        kind = "csv"
    else:
        table = work / "t.jsonl"
        if rng.random() < 0.6:
            lines = [
                mutate_json(dict(r), rng) if rng.random() < 0.5 else json.dumps(r).encode()
                for r in rows
            ]
            raw = b"\n".join(lines) + b"\n"
        else:
            raw = mutate_bytes(("\n".join(json.dumps(r) for r in rows) + "\n").encode(), rng)
        table.write_bytes(raw)
        kind = "jsonl"
    return _guarded(lambda: _accept_manifest(kind, table, work / "s.h5", rng))


def _array_seed(rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(6, 4)).astype(np.float32)
    choice = rng.integers(9)
    if choice == 0:
        return np.array([["a", "b"], ["c", "d"]])
    if choice == 1:
        return np.zeros((2, 0, 4), np.float32)
    if choice == 2:
        return np.stack([x, x]).astype(np.complex64)
    if choice == 3:
        bad = np.stack([x, x])
        bad[0, rng.integers(6), 0] = rng.choice([np.nan, np.inf])
        return bad
    if choice == 4:
        return x  # 2-D, not (2, N, d)
    if choice == 5:
        return np.stack([x, x]).astype(np.float64) * 1e300
    return np.stack([x, x])


def case_array(work: Path, rng: np.random.Generator) -> str:
    out = work / "s.h5"
    if rng.random() < 0.3:
        path = work / "e.npz"
        x = rng.normal(size=(5, 3)).astype(np.float32)
        keys = [str(rng.choice(["image", "img", "text", "txt", "other"])) for _ in range(2)]
        np.savez(path, **{keys[0]: x, keys[1]: _array_seed(rng)})
    else:
        path = work / "e.npy"
        np.save(path, _array_seed(rng))
    if rng.random() < 0.6:
        path.write_bytes(mutate_bytes(path.read_bytes(), rng))
    args = ["import", str(path), "--out", str(out)]
    if rng.random() < 0.3:
        ids = work / "ids.txt"
        lines = [f"id{i}" for i in range(6)]
        raw = "\n".join(lines).encode()
        ids.write_bytes(mutate_bytes(raw, rng) if rng.random() < 0.7 else raw)
        args += ["--ids", str(ids)]
    if rng.random() < 0.2:
        args += [
            "--geometry",
            "lorentz",
            "--curvature",
            str(rng.choice(["nan", "inf", "-1", "1e-300", "2"])),
        ]
    outcome = _guarded(lambda: _cli_outcome(args))
    if outcome == "accepted" and verify_store(out):
        return "unverified"
    return outcome


def _store_seed(path: Path, rng: np.random.Generator) -> None:
    from mgap.store.build import store_from_arrays

    x = rng.normal(size=(6, 4)).astype(np.float32)
    store_from_arrays(
        path,
        image_embeddings=x,
        text_embeddings=x + 1,
        category_names=["a", "b"],
        primary=np.array([0, 1, -1, 0, 1, 0]),
        labels=np.eye(2, dtype=np.uint8)[[0, 1, 0, 0, 1, 0]],
        attributes={"colour": ["red"] * 6},
        prompts={"category": (["a", "b"], rng.normal(size=(2, 4)))},
    )


_ATTR_VALUES = ["abc", np.bytes_(b"\xff\xfe"), -1, 0, 1e400, np.nan, "partial", [1, 2], ""]
_DATA_VALUES = [
    np.zeros(3, np.float32),
    np.zeros((6, 4, 2), np.float32),
    np.array(["x"] * 6, dtype=object),
    np.arange(6),
    np.full((6, 4), np.nan, np.float32),
    np.zeros((0,), np.uint8),
    np.array([99, -5]),
]


def mutate_store(path: Path, rng: np.random.Generator) -> None:
    if rng.random() < 0.4:
        path.write_bytes(mutate_bytes(path.read_bytes(), rng))
        return
    with h5py.File(path, "r+") as f:
        names: list[str] = []
        f.visititems(
            lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        op = rng.integers(4)
        if op == 0:
            key = str(rng.choice(list(f.attrs) + ["block_rows", "status"]))
            f.attrs[key] = _ATTR_VALUES[rng.integers(len(_ATTR_VALUES))]
        elif op == 1:
            del f[str(rng.choice(names))]
        elif op == 2:
            name = str(rng.choice(names))
            del f[name]
            f[name] = _DATA_VALUES[rng.integers(len(_DATA_VALUES))]
        else:
            name = str(rng.choice(names))
            data = f[name][...]
            if data.size and data.dtype.kind in "fiu":
                flat = data.reshape(-1)
                flat[rng.integers(flat.size)] = rng.choice([-7, 12345, 0])
                f[name][...] = flat.reshape(data.shape)


def case_store(work: Path, rng: np.random.Generator) -> str:
    path = work / "s.h5"
    _store_seed(path, rng)
    mutate_store(path, rng)
    outcomes = []
    for args in (
        ["verify", str(path)],
        ["info", str(path), "--json"],
        ["export", str(path), "--out", str(work / "x"), "--check"],
    ):
        outcomes.append(_guarded(lambda args=args: _cli_outcome(args)))
    bad = [o for o in outcomes if o not in ("clean", "accepted")]
    if bad:
        return bad[0]
    if outcomes[0] == "accepted" and "clean" in outcomes[1:]:
        return "unverified"  # verify said ok but a reader refused it
    return outcomes[0]


CASE = {
    "annotation": case_annotation,
    "table": case_table,
    "array": case_array,
    "store": case_store,
}


def fuzz(cases: int, seed: int, tmp: Path) -> dict[str, Counter]:
    """Run `cases` mutations per kind; outcome counts per kind."""
    counts = {kind: Counter() for kind in KINDS}
    for kind in KINDS:
        rng = np.random.default_rng([seed, KINDS.index(kind)])
        for i in range(cases):
            work = tmp / f"{kind}-{i}"
            work.mkdir(parents=True)
            counts[kind][CASE[kind](work, rng)] += 1
    return counts


def _report(counts: dict[str, Counter]) -> str:
    total = sum(counts.values(), Counter())
    rows = [f"{k}: {dict(c)}" for k, c in counts.items()]
    return "; ".join(rows) + f"; total inputs {sum(total.values())}: {dict(total)}"


def _check(counts: dict[str, Counter]) -> None:
    total = sum(counts.values(), Counter())
    print("fuzz:", _report(counts))
    assert set(total) <= {"clean", "accepted"}, _report(counts)
    for kind in ("annotation", "table", "store"):
        assert counts[kind]["accepted"] and counts[kind]["clean"], _report(counts)


def test_fuzz_every_input_ends_accepted_or_in_one_clean_line(tmp_path):
    _check(fuzz(CASES, seed=17, tmp=tmp_path))


@pytest.mark.slow
def test_fuzz_thousands(tmp_path):
    _check(fuzz(SLOW_CASES, seed=1717, tmp=tmp_path))
