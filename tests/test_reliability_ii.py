"""Issue 26 (Reliability II): undo copies tied to their store, sidecars never written
through links, caches keyed on content, bounds and one-line errors."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys

import h5py
import numpy as np
import pytest

from mgap.cli import main
from mgap.core.errors import MgapError, StoreError, UsageError
from mgap.engine.datasets import load_manifest
from mgap.engine.datasets.images import open_rgb
from mgap.engine.extract.perturb import parse_perturbation
from mgap.engine.extract.ranks import _check_plan
from mgap.engine.studies.groupings import load_groupings
from mgap.engine.studies.matching import _sizes
from mgap.engine.studies.projections import project_store
from mgap.engine.studies.retrieval import retrieval_report
from mgap.engine.studies.work import WORK_FILE_ENV
from mgap.store import Store, undo
from mgap.store.build import store_from_arrays
from mgap.store.cache import load_cached, save_cached
from mgap.store.lock import StoreLock
from mgap.store.merge import drop_leftover_ranks
from mgap.store.naming import SIDECARS, sidecar
from mgap.store.progress import write_progress
from mgap.store.writer import StoreLayout, StoreWriter, create_store
from mgap.tui import analysis_jobs
from mgap.tui.launcher import launch_detached


def _sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _arrays(seed: int, n: int = 12, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


def _complete(path, seed: int, model: str, n: int = 12) -> None:
    X, Y = _arrays(seed, n)
    store_from_arrays(
        path,
        image_embeddings=X,
        text_embeddings=Y,
        provenance={"model": model},
        overwrite=True,
    )


def _partial(path, n: int = 8, d: int = 8) -> StoreWriter:
    layout = StoreLayout(
        image_ids=[f"i{k}" for k in range(n)],
        image_paths=[f"{k}.jpg" for k in range(n)],
        captions=[f"caption {k}" for k in range(n)],
        caption_image_row=np.arange(n),
    )
    w = create_store(path, layout, {"model": "A"}, image_dim=d, text_dim=d, block_rows=2)
    w.write_texts(0, np.ones((n, d), np.float32))
    return w


# -- item 1: a stale undo copy ------------------------------------------------------------
def test_stale_undo_never_leaks_into_a_new_store(tmp_path):
    path = tmp_path / "s.h5"
    w = _partial(path)
    w.set_attrs(note="x" * 3000)
    undo.save(path)  # a kill while a metadata write was in flight leaves this behind
    assert undo.undo_path(path).exists()
    X, Y = _arrays(7, n=20, d=8)
    store_from_arrays(
        path, image_embeddings=X, text_embeddings=Y, provenance={"model": "B"}, overwrite=True
    )
    store = Store(path, check=True)
    assert store.attrs["model"] == "B" and "note" not in store.attrs
    assert np.array_equal(store.image_embeddings(np.float32), X)
    assert not undo.undo_path(path).exists()


@pytest.mark.parametrize("kind", ["garbage", "pickle", "symlink", "foreign"])
def test_a_foreign_undo_is_refused_in_one_line(tmp_path, kind):
    path, other = tmp_path / "s.h5", tmp_path / "other.h5"
    _partial(path)
    before = _sha(path)
    stale = undo.undo_path(path)
    if kind == "garbage":
        stale.write_bytes(b"not an undo copy at all" * 10)
    elif kind == "pickle":
        with open(stale, "wb") as fh:
            np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "symlink":
        victim = tmp_path / "victim"
        victim.write_bytes(b"keep me")
        stale.symlink_to(victim)
    else:
        _partial(other)
        undo.save(other)
        os.replace(undo.undo_path(other), stale)
    with pytest.raises(StoreError) as err:
        StoreWriter(path)
    line = err.value.one_line()
    assert str(stale) in line and "pickled" not in line and "\n" not in line
    assert _sha(path) == before  # nothing was written back


def test_the_undo_of_the_same_store_still_rolls_back(tmp_path):
    path = tmp_path / "s.h5"
    _partial(path)
    before = _sha(path)
    undo.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["half_written"] = "y" * 4000
    StoreWriter(path)  # rolls back first
    assert _sha(path) == before and not undo.undo_path(path).exists()


# -- item 2: sidecars never followed through links ---------------------------------------
def _use_every_sidecar(path) -> None:
    """Everything mgap writes beside a store: lock, creation, rows, skips, a metadata
    write (undo), the final status, progress, cache, rank folder, the TUI's job log."""
    with StoreLock(path):
        w = _partial(path)
        w.write_images(0, np.ones((8, 8), np.float32), np.ones(8))
        w.add_skipped("i3", "a reason")
        w.set_attrs(note="n")
        w.finish()
    write_progress(path, status="complete")
    store = Store(path)
    save_cached(store, "k", {"a": np.arange(3)})
    assert load_cached(Store(path), "k")["a"].tolist() == [0, 1, 2]
    _check_plan(path, {"world_size": 1}, overwrite=False)
    job = launch_detached([sys.executable, "-c", "print('job output')"], sidecar(path, ".log"))
    assert job.process.wait(timeout=60) == 0
    assert sidecar(path, ".log").read_bytes().endswith(b"job output\n")
    for kind in ("gap", "retrieval"):  # the files of a TUI analysis job of that kind
        write_progress(analysis_jobs.job_target(path, kind), status="running")
        out, work = sidecar(path, f".{kind}.json"), sidecar(path, f".{kind}.work.json")
        code = "from mgap.engine.studies.work import phase; phase('reading'); print('{}')"
        job = launch_detached(
            [sys.executable, "-c", code],
            sidecar(path, f".{kind}.log"),
            stdout=out,
            env={WORK_FILE_ENV: str(work)},
        )
        assert job.process.wait(timeout=60) == 0
        assert out.read_text() == "{}\n" and "reading" in work.read_text()


@pytest.mark.parametrize("suffix", SIDECARS)
def test_no_sidecar_is_written_through_a_link(tmp_path, suffix):
    victim = tmp_path / "victim.h5"
    _complete(victim, 1, "victim")
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    before = _sha(victim)
    path = tmp_path / "s.h5"
    link = sidecar(path, suffix)
    link.symlink_to(victim_dir if suffix == ".ranks" else victim)
    try:
        _use_every_sidecar(path)
    except MgapError as exc:
        line = exc.one_line()
        assert str(link) in line and "link" in line and "\n" not in line
    assert _sha(victim) == before
    assert list(victim_dir.iterdir()) == []
    assert not path.is_symlink()


def test_a_hard_link_where_a_sidecar_belongs_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    path = tmp_path / "s.h5"
    w = _partial(path)
    os.link(victim, sidecar(path, ".skipped.jsonl"))
    with pytest.raises(StoreError, match="hard links"):
        w.add_skipped("i1", "why")
    assert victim.read_bytes() == b"keep me"


def test_progress_temporary_file_is_not_predictable(tmp_path):
    path = tmp_path / "s.h5"
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    old_name = tmp_path / f".s.h5.progress.json.{os.getpid()}.tmp"
    old_name.symlink_to(victim)
    write_progress(path, status="running")
    assert victim.read_bytes() == b"keep me"
    assert (tmp_path / "s.h5.progress.json").stat().st_mode & 0o777 == 0o644  # others read it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [victim.name, old_name.name, "s.h5.progress.json"]
    )


# -- item 4: caches answer only for their own data ----------------------------------------
def _same_second(path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["finished"] = "2026-01-01T00:00:00+00:00"


def test_cached_retrieval_and_projection_never_answer_for_another_store(tmp_path):
    a, b, spare = tmp_path / "A.h5", tmp_path / "B.h5", tmp_path / "tmp.h5"
    _complete(a, 1, "m")
    _complete(b, 2, "m")
    for p in (a, b):
        _same_second(p)
    docs = {p: retrieval_report(Store(p)).to_json() for p in (a, b)}
    coords = {p: project_store(Store(p), method="pca").coords for p in (a, b)}
    assert retrieval_report(Store(a)).to_json()["cached"] is True
    os.replace(a, spare)  # swap the names; each cache stays where it was
    os.replace(b, a)
    os.replace(spare, b)
    swapped = retrieval_report(Store(a)).to_json()
    assert not swapped.get("cached")
    assert swapped["i2t"] == docs[b]["i2t"] and swapped["t2i"] == docs[b]["t2i"]
    projection = project_store(Store(a), method="pca")
    assert not projection.cached
    assert np.allclose(projection.coords, coords[b])


# -- items 8 and 9: bounds, and errors that name the problem -------------------------------
def _run(args: list[str], env: dict | None = None) -> tuple[int, str]:
    """`mgap ARGS` in this process; (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    argv, saved = sys.argv, dict(os.environ)
    sys.argv = ["mgap", *args]
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(saved)
    return code, err.getvalue()


def _one_line(result: tuple[int, str], *words: str) -> str:
    code, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (1, 2) and len(lines) == 1, (code, err)
    assert "Error:" not in lines[0].split("error:", 1)[-1] and "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("blur:1e9", "between 0 and 101"),
        ("blur:99999", "between 0 and 101"),
        ("occlude:2.5", "not a whole number"),
        ("occlude:100000", "between 0 and 4096"),
        ("noise:1e300", "between 0 and 100"),
        ("blur:x", "not a number"),
    ],
)
def test_perturbation_values_have_a_maximum_and_say_what_is_wrong(text, words):
    with pytest.raises(UsageError) as err:
        parse_perturbation(text)
    assert words in err.value.one_line() and text in err.value.one_line()
    assert parse_perturbation("blur:3.0").name == "blur:3"


def test_bootstrap_and_steps_have_a_maximum(tmp_path):
    path = tmp_path / "s.h5"
    _complete(path, 1, "m")
    _one_line(
        _run(["gap", str(path), "--groups", "category", "--bootstrap", "100000000"]),
        "--bootstrap must be between 0 and 100,000",
    )
    _one_line(
        _run(["traverse", str(path), "--image", "0", "--steps", "100000000"]),
        "--steps",
        "less than or equal to 10000",
    )


def test_export_to_a_file_or_an_impossible_folder_names_the_problem(tmp_path):
    path = tmp_path / "s.h5"
    _complete(path, 1, "m")
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line(_run(["export", str(path), "--out", str(afile)]), str(afile), "a file, not a folder")
    _one_line(_run(["export", str(path), "--out", str(path)]), str(path), "a file, not a folder")
    _one_line(_run(["export", str(path), "--out", "/proc/self/x"]), "/proc/self/x")


def test_a_store_dir_that_is_a_file_names_the_problem(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line(_run(["ls", "--store-dir", str(afile)]), str(afile), "a file, not a store folder")
    with pytest.raises(StoreError, match="it is a file, not a folder"):
        StoreLock(afile / "s.h5").acquire()
    with pytest.raises(StoreError, match="afile: it is a file, not a folder"):
        _partial(afile / "s.h5")


def test_match_with_too_large_a_base_names_the_base():
    with pytest.raises(UsageError) as err:
        _sizes(40, 1000, None)
    line = err.value.one_line()
    assert "--base 1000" in line and "40" in line and "-960" not in line


# -- items 7 and 10 -----------------------------------------------------------------------
def test_a_file_name_that_is_not_utf8_is_embedded_under_an_escaped_name(tmp_path):
    from PIL import Image

    folder = tmp_path / "root" / "dog"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "plain.png")
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    Image.new("RGB", (8, 8), (10, 200, 10)).save(raw, format="PNG")
    manifest = load_manifest("imagefolder", tmp_path / "root", None, None)
    ids = [r.id for r in manifest.records]
    assert ids == ["dog/caf\\xe9.png", "dog/plain.png"]
    with open(raw, "rb") as fh:
        assert manifest.image_bytes(0) == fh.read()
    assert manifest.load_image(0).getpixel((0, 0)) == (10, 200, 10)
    StoreLayout(
        image_ids=ids,
        image_paths=[r.path for r in manifest.records],
        captions=["c", "c"],
        caption_image_row=np.arange(2),
    )


@pytest.mark.parametrize("data", [b"", b"not an image at all"])
def test_an_unreadable_image_has_the_same_reason_every_run(data):
    reasons = set()
    for _ in range(2):
        with pytest.raises(Exception) as err:
            open_rgb(bytes(data))
        reasons.add(str(err.value))
    [reason] = reasons
    assert "0x" not in reason and "BytesIO" not in reason and "cannot identify" in reason


def test_a_stale_skip_journal_never_leaks_into_a_new_store(tmp_path):
    path = tmp_path / "s.h5"
    _partial(path).add_skipped("i3", "from the old run")
    _complete(path, 3, "new")
    assert Store(path).skipped == {}


def test_duplicate_ids_in_a_groups_csv_are_counted_in_the_note(tmp_path):
    path = tmp_path / "s.h5"
    _complete(path, 1, "m", n=4)  # image ids "0".."3"
    table = tmp_path / "g.csv"
    table.write_text("image_id,colour\n0,red\n1,blue\n0,green\n1,red\n1,blue\n2,red\n3,red\n")
    _, [report] = load_groupings(Store(path), [str(table)])
    assert report.duplicate_rows == 3
    assert "3 rows repeat an image of an earlier row" in report.line()


def _leftover_ranks(path, size: int):
    folder = sidecar(path, ".ranks")
    folder.mkdir()
    (folder / "rank-00000-of-00002.h5").write_bytes(b"\0" * size)
    (folder / "plan.json").write_text("{}")  # 2 bytes
    return folder


def test_leftover_rank_stores_are_named_with_their_size_and_dropped_once_complete(tmp_path):
    path = tmp_path / "s.h5"
    _complete(path, 1, "m")
    folder = _leftover_ranks(path, 1_499_998)
    code, err = _run(["ls", "--store-dir", str(tmp_path)])
    assert code == 0
    said = " ".join(err.split())
    assert "s.h5: s.h5.ranks holds 1.5 MB of rank stores left by an --nproc run" in said
    code, err = _run(["info", str(path)])
    assert code == 0 and "s.h5.ranks holds 1.5 MB" in " ".join(err.split())
    assert drop_leftover_ranks(path) == 1_500_000
    assert not folder.exists() and Store(path).status == "complete"
    assert "ranks" not in _run(["ls", "--store-dir", str(tmp_path)])[1]


def test_rank_stores_beside_a_partial_or_damaged_store_or_behind_a_link_are_kept(tmp_path):
    partial = tmp_path / "p.h5"
    _partial(partial)
    kept = _leftover_ranks(partial, 10)
    assert drop_leftover_ranks(partial) is None and kept.is_dir()
    assert "ranks" not in _run(["ls", "--store-dir", str(tmp_path)])[1]  # the resume needs them
    damaged = tmp_path / "d.h5"
    _complete(damaged, 2, "m")
    with h5py.File(damaged, "r+") as f:
        f["images/embeddings"][0] += 1  # rows no longer match their checksums
    kept = _leftover_ranks(damaged, 10)
    assert drop_leftover_ranks(damaged) is None and kept.is_dir()
    linked = tmp_path / "l.h5"
    _complete(linked, 3, "m")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_bytes(b"keep me")
    sidecar(linked, ".ranks").symlink_to(target)
    assert drop_leftover_ranks(linked) is None
    assert (target / "keep").read_bytes() == b"keep me"


def test_work_temporary_file_is_not_predictable(tmp_path, monkeypatch):
    """An analysis job's work file is replaced through a fresh temporary name, never through
    the `.<name>.<pid>.tmp` a neighbour could plant as a link."""
    from mgap.engine.studies.work import write_work

    work = tmp_path / "s.h5.gap.work.json"
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / f".{work.name}.{os.getpid()}.tmp").symlink_to(victim)
    monkeypatch.setenv(WORK_FILE_ENV, str(work))
    write_work(label="reading", done=0, total=0)
    assert victim.read_bytes() == b"keep me"
    assert json.loads(work.read_text())["label"] == "reading"
