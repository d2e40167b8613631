"""`mgap compare`: rows equal the metrics written out on the shared images, a second run is
answered from the caches, --correlate matches scipy across the rows, --paired of a store
with itself is exactly 0, and the refusals are one line each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import check_schema
from scipy import stats

from mgap.store.build import store_from_arrays

N, D, CAPTIONS = 40, 6, 2


def _store(path: Path, seed: int, *, noise: float, ids=None, dataset="toy", extra=None) -> str:
    """N images with CAPTIONS captions each, 3 classes with prompts, near-paired sides."""
    rng = np.random.default_rng(seed)
    ids = ids if ids is not None else [f"img{i}" for i in range(N)]
    n = len(ids)
    Z = rng.normal(size=(n, D))
    X = Z + noise * rng.normal(size=(n, D))
    Y = np.repeat(Z, CAPTIONS, axis=0) + noise * rng.normal(size=(n * CAPTIONS, D)) + noise
    label = np.asarray([int(i[3:]) % 3 for i in ids])
    store_from_arrays(
        path,
        image_embeddings=X,
        text_embeddings=Y,
        image_ids=ids,
        caption_image_row=np.repeat(np.arange(n), CAPTIONS),
        category_names=["a", "b", "c"],
        primary=label,
        labels=np.eye(3, dtype=bool)[label],
        prompts={"category": (["a", "b", "c"], rng.normal(size=(3, D)))},
        provenance={"model": f"m{seed}", "dataset": dataset, "split": "val", **(extra or {})},
    )
    return str(path)


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def written_row(X, Y, owner) -> dict:
    """The gap and retrieval numbers from their definitions (docs/design.md §7)."""
    x, y = _unit(X), _unit(Y)
    n, m = len(x), len(y)
    paired = float(np.mean(np.sum(x[owner] * y, axis=1)))
    S = x @ y.T
    i2t_r1 = np.mean([owner[np.argmax(S[i])] == i for i in range(n)])
    t2i_r1 = np.mean([np.argmax(S[:, j]) == owner[j] for j in range(m)])
    sx, sy = x.sum(0), y.sum(0)
    return {
        "l2m": float(np.linalg.norm(x.mean(0) - y.mean(0))),
        "paired_cosine": paired,
        "intra_image_cosine": float((sx @ sx - n) / (n * (n - 1))),
        "intra_text_cosine": float((sy @ sy - m) / (m * (m - 1))),
        "i2t_r1": float(i2t_r1),
        "t2i_r1": float(t2i_r1),
    }


def _json(cli, *args) -> dict:
    done = cli("compare", *args, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    check_schema("compare", doc)
    return doc


def test_rows_are_the_written_out_metrics_and_the_second_run_is_cached(tmp_path, cli):
    paths = [_store(tmp_path / f"s{i}.h5", i, noise=0.3 + 0.4 * i) for i in range(2)]
    doc = _json(cli, *paths)
    assert doc["shared_ids"] == N and doc["n_stores"] == 2
    from mgap.store import Store

    for row, path in zip(doc["rows"], paths, strict=True):
        store = Store(path)
        expected = written_row(
            store.image_embeddings(), store.text_embeddings(), store.text_image_index
        )
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, abs=1e-6), key
        assert (row["n_images"], row["n_texts"]) == (N, N * CAPTIONS)
        assert row["logit_scale"] is None and row["step"] is None
        assert row["cached"] is False
    again = _json(cli, *paths)
    assert all(row["cached"] for row in again["rows"])
    strip = lambda d: [{k: v for k, v in r.items() if k != "cached"} for r in d["rows"]]  # noqa: E731
    assert strip(again) == strip(doc)


def test_the_shared_ids_decide_the_rows(tmp_path, cli):
    """A store holding extra images is measured on the shared ids only: its row equals the
    row of a store that holds just those images."""
    more = [f"img{i}" for i in range(N + 10)]
    big = _store(tmp_path / "big.h5", 7, noise=0.5, ids=more)
    other = _store(tmp_path / "other.h5", 8, noise=0.5)
    doc = _json(cli, big, other)
    assert doc["shared_ids"] == N
    from mgap.store import Store

    store = Store(big)
    X, Y = store.image_embeddings()[:N], store.text_embeddings()[: N * CAPTIONS]
    expected = written_row(X, Y, store.text_image_index[: N * CAPTIONS])
    for key, value in expected.items():
        assert doc["rows"][0][key] == pytest.approx(value, abs=1e-6), key
    assert doc["rows"][0]["n_images"] == N
    done = cli("compare", big, other)
    assert f"{N} shared image ids" in done.stdout


def test_model_attributes_sort_and_correlate(tmp_path, cli):
    paths = [
        _store(
            tmp_path / f"z{i}.h5",
            10 + i,
            noise=0.2 + 0.25 * i,
            extra={"logit_scale": 100.0 - 3 * i, "step": 1000 * i},
        )
        for i in range(5)
    ]
    doc = _json(cli, *paths, "--sort", "-l2m", "--correlate", "--bootstrap", "200")
    l2m = [r["l2m"] for r in doc["rows"]]
    assert l2m == sorted(l2m, reverse=True)
    assert sorted(r["step"] for r in doc["rows"]) == [0, 1000, 2000, 3000, 4000]
    assert {r["logit_scale"] for r in doc["rows"]} == {100.0, 97.0, 94.0, 91.0, 88.0}
    block = doc["correlation"]
    assert block["bootstrap"] == 200 and block["permutations"] == 1000
    pairs = {(p["x"], p["y"]): p for p in block["pairs"]}
    assert ("l2m", "zeroshot_top1") in pairs and ("step", "i2t_r1") in pairs
    for (x, y), entry in pairs.items():
        xs = [r[x] for r in doc["rows"]]
        ys = [r[y] for r in doc["rows"]]
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            assert entry["spearman"]["value"] == pytest.approx(stats.spearmanr(xs, ys)[0])
            assert entry["kendall"]["value"] == pytest.approx(stats.kendalltau(xs, ys)[0])
            assert entry["pearson"]["value"] == pytest.approx(stats.pearsonr(xs, ys)[0])
            low, high = entry["spearman"]["interval"]
            assert -1 <= low <= high <= 1
    png = tmp_path / "scatter.png"
    shown = cli("compare", *paths, "--correlate", "--y", "i2t_r1", "--png", str(png))
    assert shown.returncode == 0, shown.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(f"•m{10 + i}" in shown.stdout for i in range(5))


def test_a_store_paired_with_itself_differs_by_exactly_zero(tmp_path, cli):
    a = _store(tmp_path / "a.h5", 1, noise=0.4)
    doc = _json(cli, a, a, "--paired", "--bootstrap", "100", "--seed", "4")
    block = doc["paired"]
    assert block["n_images"] == N and block["bootstrap"] == 100
    for entry in block["differences"]:
        assert entry["difference"] == 0.0, entry["metric"]
        assert entry["interval"] == [0.0, 0.0], entry["metric"]
    row = doc["rows"][0]
    for entry in block["differences"]:
        assert entry["a"] == pytest.approx(row[entry["metric"]], abs=1e-9), entry["metric"]


def test_a_paired_difference_has_an_interval_around_it(tmp_path, cli):
    a = _store(tmp_path / "a.h5", 1, noise=0.2)
    b = _store(tmp_path / "b.h5", 2, noise=0.9)
    block = _json(cli, a, b, "--paired", "--bootstrap", "300")["paired"]
    gap = next(d for d in block["differences"] if d["metric"] == "l2m")
    assert gap["difference"] == pytest.approx(gap["b"] - gap["a"])
    assert gap["interval"][0] < gap["difference"] < gap["interval"][1]
    assert gap["interval"][0] > 0  # B's gap is larger: noise 0.9 against 0.2


def _one_line_refusal(done, *words):
    assert done.returncode in (1, 2)
    assert done.stderr.strip().count("\n") == 0, done.stderr
    for word in words:
        assert word in done.stderr


def test_refusals_are_one_line(tmp_path, cli):
    three = [_store(tmp_path / f"t{i}.h5", i, noise=0.3) for i in range(3)]
    _one_line_refusal(cli("compare", *three, "--correlate"), "at least 4 stores")
    disjoint = _store(tmp_path / "d.h5", 9, noise=0.3, ids=[f"img{i}" for i in range(N, 2 * N)])
    _one_line_refusal(cli("compare", three[0], disjoint), "share no image ids")
    other = _store(tmp_path / "o.h5", 5, noise=0.3, dataset="other")
    _one_line_refusal(cli("compare", three[0], other), "different datasets", "--allow-mixed")
    mixed = _json(cli, three[0], other, "--allow-mixed")
    assert mixed["shared_ids"] is None and len(mixed["rows"]) == 2
    _one_line_refusal(cli("compare", three[0], "--sort", "nope"), "--sort")
    _one_line_refusal(cli("compare", *three, "--paired"), "exactly two")


def _checkpoint(path: str, *, logit_scale: float, step: int) -> str:
    """The root attributes extraction writes for a checkpoint, set here with h5py."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["logit_scale"] = np.float64(logit_scale)
        f.attrs["checkpoint_step"] = np.int64(step)
    return path


def test_logit_scale_and_checkpoint_step_attributes_are_columns(tmp_path, cli):
    paths = [
        _checkpoint(_store(tmp_path / f"c{i}.h5", 20 + i, noise=0.3), logit_scale=s, step=t)
        for i, (s, t) in enumerate([(14.3, 500), (28.6, 100)])
    ]
    doc = _json(cli, *paths, "--sort", "step")
    assert [(r["step"], r["logit_scale"]) for r in doc["rows"]] == [(100, 28.6), (500, 14.3)]
    shown = cli("compare", *paths)
    assert "28.6" in shown.stdout and "500" in shown.stdout


def test_by_step_orders_the_checkpoints_and_draws_the_trajectory(tmp_path, cli):
    steps = [3000, 0, 2000, 1000]
    paths = [
        _checkpoint(
            _store(tmp_path / f"k{i}.h5", 30 + i, noise=0.2 + 0.2 * i), logit_scale=10.0 + i, step=t
        )
        for i, t in enumerate(steps)
    ]
    doc = _json(cli, *paths, "--by", "step")
    assert [r["step"] for r in doc["rows"]] == [0, 1000, 2000, 3000]
    block = doc["trajectory"]
    assert block["by"] == "step" and block["steps"] == [0, 1000, 2000, 3000]
    assert block["labels"] == [r["model"] for r in doc["rows"]] == ["m31", "m33", "m32", "m30"]
    series = {s["metric"]: s for s in block["series"]}
    assert set(series) == {"l2m", "rmg", "paired_cosine", "i2t_r1", "t2i_r1", "zeroshot_top1"}
    assert block["skipped"] == []
    for name, entry in series.items():
        assert entry["values"] == [r[name] for r in doc["rows"]], name
        assert entry["kind"] == (
            "gap" if name in ("l2m", "rmg", "paired_cosine") else "performance"
        )
    png = tmp_path / "trajectory.png"
    shown = cli("compare", *paths, "--by", "step", "--png", str(png))
    assert shown.returncode == 0, shown.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "gap against step" in shown.stdout and "performance against step" in shown.stdout
    assert "l2m" in shown.stdout and "zeroshot_top1" in shown.stdout


def test_by_step_refuses_a_store_without_a_step(tmp_path, cli):
    with_step = _checkpoint(_store(tmp_path / "a.h5", 1, noise=0.3), logit_scale=10.0, step=5)
    without = _store(tmp_path / "b.h5", 2, noise=0.3)
    _one_line_refusal(cli("compare", with_step, without, "--by", "step"), "checkpoint_step", "b.h5")
    _one_line_refusal(cli("compare", with_step, "--by", "epoch"), "--by")


def test_the_cached_path_never_answers_for_changed_rows(tmp_path, cli):
    """Rows cached per store file: a second run answers without measuring; rewriting one
    store (other embeddings, then another caption) makes only its row measured again, with
    the new values; MGAP_CHECK=1 measures every row."""
    import h5py

    paths = [_store(tmp_path / f"f{i}.h5", 40 + i, noise=0.3 + 0.3 * i) for i in range(3)]
    first = _json(cli, *paths)
    again = _json(cli, *paths)
    assert all(r["cached"] for r in again["rows"])
    assert again["rows"] == [{**r, "cached": True} for r in first["rows"]]
    other = _store(tmp_path / "other.h5", 99, noise=1.5)  # the same ids and shape
    Path(other).replace(paths[1])  # renamed over f1.h5: its sidecar cache stays
    changed = _json(cli, *paths)
    assert [r["cached"] for r in changed["rows"]] == [True, False, True]
    from mgap.store import Store

    store = Store(paths[1])
    expected = written_row(
        store.image_embeddings(), store.text_embeddings(), store.text_image_index
    )
    assert changed["rows"][1]["l2m"] == pytest.approx(expected["l2m"], abs=1e-6)
    assert changed["rows"][1]["l2m"] != pytest.approx(first["rows"][1]["l2m"], abs=1e-3)
    assert _json(cli, *paths)["rows"][1]["cached"] is True
    with h5py.File(paths[2], "a") as f:  # one caption edited in place
        f["texts/captions"][0] = "a caption that was not there"
    assert [r["cached"] for r in _json(cli, *paths)["rows"]] == [True, True, False]
    checked = cli("compare", *paths, "--json", env={"MGAP_CHECK": "1"})
    assert checked.returncode == 0, checked.stderr
    assert not any(r["cached"] for r in json.loads(checked.stdout)["rows"])
